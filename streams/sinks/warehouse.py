"""The warehouse: a star schema (schema ``dw``) fed from the canonical topics, and the views a
controller opens first (``warehouse_views.sql``).

Each canonical event type has a table whose columns are the model's fields (so the two cannot
drift), plus ``contract_number`` (the engagement, the dimension every fact joins on),
``first_seen_at`` and ``updated_at``. Loads are idempotent upserts; a deleted source row deletes
its warehouse row."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, get_args, get_origin

import psycopg

from streams import resources
from streams.canonical.avro import EVENT_TYPES
from streams.capture.tables import TABLES
from streams.sinks.upsert import upsert

VIEWS = resources.path("sinks", "warehouse_views.sql")

# the warehouse table of each event type and its key: a source row's is its table's primary key
KEYS: dict[str, tuple[str, ...]] = {
    **{m.event_type: m.key for m in TABLES.values()},
    "contract": ("contract_number",), "schedule_item": ("contract_number", "schedule_key"),
    "billing_event": ("billing_event_id",), "project_cost": ("cost_event_id",), "receivable": ("invoice_number",),
}
SQL_TYPES = {str: "text", int: "bigint", bool: "boolean", Decimal: "numeric", date: "date", datetime: "timestamptz"}


def _sql_type(annotation: Any) -> str:
    if get_origin(annotation) is typing.Literal:
        return "text"
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args:
        return _sql_type(args[0])
    return SQL_TYPES[annotation]


def columns(event_type: str) -> list[str]:
    fields = list(EVENT_TYPES[event_type].model_fields)
    return fields if "contract_number" in fields else [*fields, "contract_number"]


def ddl() -> str:
    statements = ["CREATE SCHEMA IF NOT EXISTS dw;"]
    for event_type, model in EVENT_TYPES.items():
        hints = typing.get_type_hints(model)
        fields = [f"{name} {_sql_type(hints[name])}" for name in model.model_fields]
        cols = list(fields)
        if "contract_number" not in model.model_fields:
            cols.append("contract_number text")
        cols += ["first_seen_at timestamptz NOT NULL DEFAULT now()", "updated_at timestamptz NOT NULL DEFAULT now()",
                 f"PRIMARY KEY ({', '.join(KEYS[event_type])})"]
        statements.append(f"CREATE TABLE IF NOT EXISTS dw.{event_type} (\n  " + ",\n  ".join(cols) + "\n);")
        # a field added to a model later is added to a warehouse made before it
        statements += [f"ALTER TABLE dw.{event_type} ADD COLUMN IF NOT EXISTS {field};" for field in fields]
        if "contract_number" in columns(event_type):
            statements.append(f"CREATE INDEX IF NOT EXISTS {event_type}_contract ON dw.{event_type} (contract_number);")
    return "\n".join(statements)


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(ddl())
        conn.execute(VIEWS.read_text())


@dataclass(frozen=True)
class Load:
    """One canonical event for the warehouse: a record to upsert, or (record None) a deletion."""
    event_type: str
    record: dict | None
    ref: str | None
    contract: str | None

    def key(self) -> tuple:
        if self.record is not None:
            return tuple(str(self.record[k]) for k in KEYS[self.event_type])
        return tuple((self.ref or "").split(":", 1)[-1].split("/"))


def write(conn: psycopg.Connection, loads: list[Load]) -> None:
    """The last event per row wins; one transaction per batch."""
    latest: dict[tuple, Load] = {}
    for load in loads:
        if load.event_type in KEYS:
            latest[(load.event_type, load.key())] = load
    with conn.transaction():
        for event_type in KEYS:
            mine = [entry for (t, _), entry in latest.items() if t == event_type]
            if not mine:
                continue
            cols = columns(event_type)
            rows = [dict(entry.record, contract_number=entry.record.get("contract_number", entry.contract))
                    for entry in mine if entry.record is not None]
            upsert(conn, f"dw.{event_type}", cols, KEYS[event_type], rows)
            deleted = [entry.key() for entry in mine if entry.record is None]
            if deleted:
                where = " AND ".join(f"{k}::text = %s" for k in KEYS[event_type])
                with conn.cursor() as cur:
                    cur.executemany(f"DELETE FROM dw.{event_type} WHERE {where}", deleted)
