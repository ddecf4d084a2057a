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
  source_ref           text,                   -- its row: <schema>.<table>:<key>
  source_lsn           bigint,
  source_transaction   text,
  source_committed_at  timestamptz,
  written_at           timestamptz,            -- when the worker wrote it (its q2c.audit record's timestamp)
  recorded_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE audit.sink_write ADD COLUMN IF NOT EXISTS source_ref text;  -- stores made before these columns
ALTER TABLE audit.sink_write ADD COLUMN IF NOT EXISTS written_at timestamptz;
CREATE INDEX IF NOT EXISTS sink_write_contract ON audit.sink_write (contract_number, recorded_at);
CREATE INDEX IF NOT EXISTS sink_write_trace ON audit.sink_write (trace_id, recorded_at);
CREATE INDEX IF NOT EXISTS sink_write_row ON audit.sink_write (table_name, row_key, seq);
"""


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(DDL)


def write(conn: psycopg.Connection, records: list[tuple[AuditRecord, datetime | None]]) -> int:
    """Insert the records (with when the worker wrote them) not kept yet, in one statement; how
    many were new. A record that says the same change as its row's last one is not kept: in the
    batch, the row's previous record; for its first in the batch, the row's last in the store."""
    last: dict[tuple[str, str], tuple[str | None, str]] = {}
    kept: list[tuple[AuditRecord, datetime | None, bool]] = []
    for r, written_at in records:
        row, change = (r.table, r.key), (r.before, r.after)
        if last.get(row) == change:
            continue
        kept.append((r, written_at, row not in last))
        last[row] = change
    if not kept:
        return 0
    columns = list(zip(*[(r.audit_id, r.sink, r.table, r.key, r.contract_number, r.trace_id, r.before, r.after,
                          r.database, r.source_ref, r.lsn, r.transaction, r.committed_at, written_at, first)
                         for r, written_at, first in kept], strict=False))
    with conn.transaction():
        cur = conn.execute(
            "INSERT INTO audit.sink_write (audit_id, sink, table_name, row_key, contract_number, trace_id, before_row,"
            " after_row, source_database, source_ref, source_lsn, source_transaction, source_committed_at, written_at)"
            " SELECT v.audit_id, v.sink, v.table_name, v.row_key, v.contract_number, v.trace_id, v.before_row::jsonb,"
            " v.after_row::jsonb, v.source_database, v.source_ref, v.source_lsn, v.source_transaction,"
            " v.source_committed_at::timestamptz, v.written_at"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            "             %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::bool[])"
            "   WITH ORDINALITY AS v(audit_id, sink, table_name, row_key, contract_number, trace_id, before_row, after_row,"
            "   source_database, source_ref, source_lsn, source_transaction, source_committed_at, written_at, first, n)"
            " WHERE NOT (v.first AND EXISTS (SELECT 1 FROM (SELECT w.before_row, w.after_row FROM audit.sink_write w"
            "   WHERE w.table_name = v.table_name AND w.row_key = v.row_key ORDER BY w.seq DESC LIMIT 1) latest"
            "   WHERE latest.before_row IS NOT DISTINCT FROM v.before_row::jsonb AND latest.after_row = v.after_row::jsonb))"
            " ORDER BY v.n ON CONFLICT (audit_id) DO NOTHING",
            [list(c) for c in columns])
        return cur.rowcount


def exists(conn: psycopg.Connection) -> bool:
    """Whether the store was made (the warehouse loader makes it when it starts)."""
    return conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'audit'"
                        " AND table_name = 'sink_write'").fetchone() is not None


def history(conn: psycopg.Connection, contract_or_trace: str) -> list[dict]:
    """Every write recorded for an engagement (its contract number or its trace id), oldest
    first; none before the store was made."""
    if not exists(conn):
        return []
    cur = conn.execute(
        "SELECT audit_id, sink, table_name, row_key, contract_number, trace_id, before_row, after_row, source_database, source_ref,"
        " source_lsn, source_transaction, source_committed_at, written_at, recorded_at FROM audit.sink_write"
        " WHERE contract_number = %s OR trace_id = %s ORDER BY seq",
        (contract_or_trace, contract_or_trace))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]
