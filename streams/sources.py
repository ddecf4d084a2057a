"""``q2c sources prepare``: what a firm's DBA runs on its databases before the sync can capture
them, idempotent, and what the embedded stack runs on its own.

- the capture role ``q2c_capture`` (LOGIN REPLICATION; SELECT on the captured tables only, the
  tables each ``connect/<db>.json`` lists) and the sync's role ``q2c_sync`` (what the sync writes:
  erp_inbound, PSA project provisioning, ``crm.account_financials``, the warehouse's schemas) and
  the warehouse's read-only role ``q2c_reader`` (SELECT on the ``dw`` schema only, tables and
  views the sync makes later included: a BI tool's);
- a publication ``q2c_<db>`` per source database, made by the owner so Debezium needs no more;
- ``REPLICA IDENTITY FULL`` for a captured table without a primary key (a delete must say which
  row it removed);
- a Debezium signal table ``q2c_signal.debezium_signal`` per source database, for incremental
  snapshots (``signal.data.collection``), in the publication;
- checks of the server (``wal_level``, ``max_replication_slots``, ``max_wal_senders``), in words.

Passwords come from ``Q2C_CAPTURE_PASSWORD``, ``Q2C_SYNC_PASSWORD`` and ``Q2C_READER_PASSWORD`` (or
the embedded stack's secret files); ``--dry-run`` prints the SQL with them masked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg

from streams.config import SOURCE_DATABASES, Settings
from streams.connectors import connector_files

CAPTURE, SYNC, READER = "q2c_capture", "q2c_sync", "q2c_reader"
SIGNAL_TABLE = "q2c_signal.debezium_signal"
MASK = "********"

# what the sync writes, per database (and reads back where it must)
SYNC_GRANTS = {
    "crm": ["GRANT USAGE ON SCHEMA crm TO q2c_sync",
            "GRANT SELECT, INSERT, UPDATE ON crm.account_financials TO q2c_sync"],
    "psa": ["GRANT USAGE ON SCHEMA psa TO q2c_sync",
            "GRANT SELECT, INSERT ON psa.project, psa.milestone TO q2c_sync"],
    "finance": [],
    "erp": ["GRANT USAGE ON SCHEMA erp_inbound TO q2c_sync",
            "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA erp_inbound TO q2c_sync"],
    "warehouse": ["GRANT CREATE ON DATABASE warehouse TO q2c_sync",
                  "CREATE SCHEMA IF NOT EXISTS dw AUTHORIZATION q2c_sync"],
}
# what a BI tool reads: the warehouse's dw schema, what the sync makes in it later included
READER_GRANTS = [
    "GRANT CONNECT ON DATABASE warehouse TO q2c_reader",
    "GRANT USAGE ON SCHEMA dw TO q2c_reader",
    "GRANT SELECT ON ALL TABLES IN SCHEMA dw TO q2c_reader",
    "ALTER DEFAULT PRIVILEGES FOR ROLE q2c_sync IN SCHEMA dw GRANT SELECT ON TABLES TO q2c_reader",
]


@dataclass(frozen=True)
class Statement:
    database: str   # where it runs (roles are the cluster's: they run in the first database)
    sql: str        # as run
    shown: str      # as printed (passwords masked)


def captured_tables() -> dict[str, list[str]]:
    """database → the tables its connector captures, from ``connect/<db>.json`` (one source of truth)."""
    found = {}
    for path in connector_files():
        config = json.loads(path.read_text())["config"]
        found[config["database.dbname"]] = config["table.include.list"].split(",")
    return found


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def _role(name: str, attributes: str, password: str) -> Statement:
    """Create the role, or bring an existing one to these attributes and this password."""
    def statement(secret: str) -> str:
        create = _literal(f"CREATE ROLE {name} {attributes} PASSWORD {secret}")
        alter = _literal(f"ALTER ROLE {name} {attributes} PASSWORD {secret}")
        return (f"DO $q2c$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN EXECUTE {create};"
                f" ELSE EXECUTE {alter}; END IF; END $q2c$")
    return Statement(SOURCE_DATABASES[0], statement(_literal(password)), statement(_literal(MASK)))


def _same(database: str, text: str) -> Statement:
    return Statement(database, text, text)


def unkeyed(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """The tables among ``tables`` without a primary key."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname || '.' || c.relname = ANY(%s) AND c.relkind = 'r'"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')", (tables,)).fetchall()
    return sorted(r[0] for r in rows)


def plan(settings: Settings, databases: tuple[str, ...] | None = None) -> list[Statement]:
    """Every statement, in order; reads each source database's catalog (which tables have no key)."""
    captured = captured_tables()
    out = [_role(CAPTURE, "LOGIN REPLICATION", settings.password("capture")),
           _role(SYNC, "LOGIN", settings.password("sync")),
           _role(READER, "LOGIN", settings.password("reader"))]
    for db in databases or (*SOURCE_DATABASES, "erp", "warehouse"):
        out.append(_same(db, f'GRANT CONNECT ON DATABASE "{db}" TO {SYNC}'))
        out += [_same(db, statement) for statement in SYNC_GRANTS.get(db, [])]
        if db == "warehouse":
            out += [_same(db, statement) for statement in READER_GRANTS]
        tables = captured.get(db)
        if not tables:
            continue
        with psycopg.connect(settings.dsn(db), connect_timeout=5) as conn:
            without_key = unkeyed(conn, tables)
        published = ", ".join([*tables, SIGNAL_TABLE])
        out += [_same(db, s) for s in (
            f'GRANT CONNECT ON DATABASE "{db}" TO {CAPTURE}',
            f"GRANT USAGE ON SCHEMA {db} TO {CAPTURE}",
            f"GRANT SELECT ON {', '.join(tables)} TO {CAPTURE}",
            *(f"ALTER TABLE {table} REPLICA IDENTITY FULL" for table in without_key),
            "CREATE SCHEMA IF NOT EXISTS q2c_signal",
            f"CREATE TABLE IF NOT EXISTS {SIGNAL_TABLE} (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL,"
            " data varchar(2048))",
            f"GRANT USAGE ON SCHEMA q2c_signal TO {CAPTURE}, {SYNC}",
            f"GRANT SELECT, INSERT ON {SIGNAL_TABLE} TO {CAPTURE}",  # its snapshot window marks
            f"GRANT SELECT, INSERT ON {SIGNAL_TABLE} TO {SYNC}",
            f"DO $q2c$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'q2c_{db}') THEN"
            f" CREATE PUBLICATION q2c_{db} FOR TABLE {published}; ELSE ALTER PUBLICATION q2c_{db} SET TABLE {published};"
            " END IF; END $q2c$",
        )]
    return out


def problems(settings: Settings) -> list[str]:
    """What is wrong with the source servers for capture, in words (empty: nothing)."""
    found = []
    for db in SOURCE_DATABASES:
        try:
            with psycopg.connect(settings.dsn(db), connect_timeout=5) as conn:
                wal_level = conn.execute("SHOW wal_level").fetchone()[0]
                slots = int(conn.execute("SHOW max_replication_slots").fetchone()[0])
                senders = int(conn.execute("SHOW max_wal_senders").fetchone()[0])
                used = conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name NOT LIKE 'q2c\\_%'").fetchone()[0]
        except psycopg.Error as exc:
            found.append(f"{db}: cannot connect as its owner ({exc.__class__.__name__}: {str(exc).strip()[:200]})")
            continue
        if wal_level != "logical":
            found.append(f"{db}: wal_level is '{wal_level}'; logical decoding needs wal_level = logical "
                         "(postgresql.conf, then a restart of the server)")
        if slots - used < 1:
            found.append(f"{db}: max_replication_slots is {slots} and {used} are taken by others; the sync needs one "
                         "slot per source database (raise max_replication_slots, then restart)")
        if senders < 1:
            found.append(f"{db}: max_wal_senders is {senders}; Debezium streams through a WAL sender (raise it, then restart)")
    return found


def apply(settings: Settings, statements: list[Statement]) -> None:
    connections: dict[str, psycopg.Connection] = {}
    try:
        for statement in statements:
            conn = connections.get(statement.database)
            if conn is None:
                conn = connections[statement.database] = psycopg.connect(settings.dsn(statement.database), autocommit=True)
            conn.execute(statement.sql)
    finally:
        for conn in connections.values():
            conn.close()
