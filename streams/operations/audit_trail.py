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
        if not conn.execute("select 1 from information_schema.tables where table_schema = 'audit'"
                            " and table_name = 'sink_write'").fetchone():
            return []
        return audit.history(conn, contract_or_trace)


def changes(before: dict | None, after: dict) -> dict[str, tuple[Any, Any]]:
    """field → (before, after) of the fields a write changed (all of them for a new row)."""
    before = before or {}
    return {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}


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
        source = ""
        if row["source_database"]:
            source = f"{row['source_ref'] or row['source_database']} LSN {row['source_lsn']}"
            if row["source_transaction"]:
                source += f" tx {row['source_transaction']}"
            source += f"\ncommitted {_when(row['source_committed_at'])}"
        else:
            source = "replay sweep"
        written = row["written_at"] or row["recorded_at"]
        delay = ""
        if row["source_committed_at"] is not None:
            delay = f"{(written - row['source_committed_at']).total_seconds():.3f} s"
        table.add_row(_when(written), row["sink"], row["table_name"], row["row_key"], shown, source, delay)
    console.print(table)
