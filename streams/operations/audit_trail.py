"""``q2c audit CONTRACT_OR_TRACE_ID``: what the sync wrote for an engagement, and why: every row
it changed in the ERP, the PSA and the CRM, what changed in it, and the source change behind it
(read from the audit schema of the warehouse database, ``streams.sinks.audit``)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from streams.config import Settings
from streams.sinks import audit


def history(settings: Settings, contract_or_trace: str) -> list[dict]:
    with psycopg.connect(settings.dsn("warehouse", "sync"), connect_timeout=5) as conn:
        return audit.history(conn, contract_or_trace)


def changes(before: dict | None, after: dict) -> dict[str, tuple[Any, Any]]:
    """field → (before, after) of the fields a write changed (all of them for a new row)."""
    before = before or {}
    return {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}


def source_change(row: dict) -> str | None:
    """The change behind a recorded write, in a line: database, row, LSN, transaction (None: a
    replay's sweep)."""
    if not row["source_database"]:
        return None
    said = f"{row['source_database']} {row['source_ref']} LSN {row['source_lsn']}" if row["source_ref"] else \
        f"{row['source_database']} LSN {row['source_lsn']}"
    return f"{said} tx {row['source_transaction']}" if row["source_transaction"] else said


def written_at(row: dict) -> datetime:
    return row["written_at"] or row["recorded_at"]


def after_commit_s(row: dict) -> float | None:
    """How long after its source commit a write was made."""
    if row["source_committed_at"] is None:
        return None
    return (written_at(row) - row["source_committed_at"]).total_seconds()


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value else ""


def as_json(rows: list[dict]) -> str:
    return json.dumps([{**row, "changes": {k: list(v) for k, v in changes(row["before_row"], row["after_row"]).items()}}
                       for row in rows], default=str, indent=2)


def render(rows: list[dict], contract_or_trace: str, console: Console | None = None) -> None:
    console = console or Console()
    if not rows:
        console.print(f"no audit records for {contract_or_trace}")
        return
    table = Table(title=f"What the sync wrote for {contract_or_trace}: {len(rows)} writes", show_lines=True)
    for column in ("written", "sink", "table", "key", "changed", "source change", "after commit"):
        table.add_column(column, overflow="fold")
    for row in rows:
        diff = changes(row["before_row"], row["after_row"])
        shown = "new row" if row["before_row"] is None else "\n".join(
            f"{k}: {b} → {a}" for k, (b, a) in sorted(diff.items()) if k not in ("updated_at",))
        source = source_change(row)
        source = f"{source}\ncommitted {_when(row['source_committed_at'])}" if source else "replay sweep"
        delay = after_commit_s(row)
        table.add_row(_when(written_at(row)), row["sink"], row["table_name"], row["row_key"], shown, source,
                      f"{delay:.3f} s" if delay is not None else "")
    console.print(table)
