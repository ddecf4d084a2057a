"""The audit trail's store: schema ``audit`` of the warehouse database (the sync's own, never a
vendor's table), fed by the warehouse loader from ``q2c.audit``. A record is kept once: a record
delivered twice has the same id, and a batch done again after a crash records the row's last
change again, perhaps with another cause (the engagement's latest change in the larger batch),
which is not kept when the row's last record already says the same change (before and after). Rows are kept: finance
keeps its audit trail for years, and pruning it is the firm's decision (``DELETE ... WHERE
written_at < ...``), not the sync's."""
from __future__ import annotations

from datetime import datetime

import psycopg

from streams.state.audit import AuditRecord

DDL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.sink_write (
  seq                  bigserial UNIQUE,       -- the order records were kept in
  audit_id             text PRIMARY KEY,
  sink                 text NOT NULL,          -- erp, psa, crm
  table_name           text NOT NULL,          -- the written table, schema-qualified
  row_key              text NOT NULL,
  contract_number      text,
  trace_id             text,
  before_row           jsonb,                  -- null: the row was not there
  after_row            jsonb NOT NULL,
  source_database      text,                   -- the change that caused the write (null: a replay's sweep)
  source_lsn           bigint,
  source_transaction   text,
  source_committed_at  timestamptz,
  written_at           timestamptz,            -- when the worker wrote it (its q2c.audit record's timestamp)
  recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sink_write_contract ON audit.sink_write (contract_number, recorded_at);
CREATE INDEX IF NOT EXISTS sink_write_trace ON audit.sink_write (trace_id, recorded_at);
CREATE INDEX IF NOT EXISTS sink_write_row ON audit.sink_write (table_name, row_key, recorded_at);
"""


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(DDL)


def write(conn: psycopg.Connection, records: list[tuple[AuditRecord, datetime | None]]) -> int:
    """Insert the records (with when the worker wrote them) not kept yet; how many were new."""
    if not records:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO audit.sink_write (audit_id, sink, table_name, row_key, contract_number, trace_id, before_row,"
            " after_row, source_database, source_lsn, source_transaction, source_committed_at, written_at)"
            " SELECT %(id)s, %(sink)s, %(table)s, %(key)s, %(contract)s, %(trace)s, %(before)s::jsonb, %(after)s::jsonb,"
            " %(db)s, %(lsn)s, %(tx)s, %(committed)s, %(written)s"
            " WHERE NOT EXISTS (SELECT 1 FROM (SELECT before_row, after_row FROM audit.sink_write"
            "   WHERE table_name = %(table)s AND row_key = %(key)s ORDER BY seq DESC LIMIT 1) last"
            "   WHERE last.before_row IS NOT DISTINCT FROM %(before)s::jsonb AND last.after_row = %(after)s::jsonb)"
            " ON CONFLICT (audit_id) DO NOTHING",
            [{"id": r.audit_id, "sink": r.sink, "table": r.table, "key": r.key, "contract": r.contract_number,
              "trace": r.trace_id, "before": r.before, "after": r.after, "db": r.database, "lsn": r.lsn,
              "tx": r.transaction, "committed": r.committed_at, "written": written_at} for r, written_at in records])
        return cur.rowcount


def history(conn: psycopg.Connection, contract_or_trace: str) -> list[dict]:
    """Every write recorded for an engagement (its contract number or its trace id), oldest first."""
    cur = conn.execute(
        "SELECT audit_id, sink, table_name, row_key, contract_number, trace_id, before_row, after_row, source_database,"
        " source_lsn, source_transaction, source_committed_at, written_at, recorded_at FROM audit.sink_write"
        " WHERE contract_number = %s OR trace_id = %s ORDER BY seq",
        (contract_or_trace, contract_or_trace))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
