"""``q2c trace QUOTE_OR_CONTRACT_NUMBER|INVOICE_NUMBER|TRACE_ID``: one engagement's way from quote
approval to cash, as a timeline.

It reads what the sync keeps of it: the audit trail (every row written to the ERP, the PSA and the
CRM, with the source change behind it: ``streams.sinks.audit``), the warehouse's copies of the
quotes (change orders ``Q-…-R2`` among them), invoices and payments, and the dead letters that name
the engagement. Each written step says when it was written and how long after its source commit.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from streams.config import Settings
from streams.operations.audit_trail import after_commit_s, changes, source_change, written_at
from streams.sinks import audit


@dataclass
class Step:
    at: datetime | None        # when the sync wrote it (or, for a source row, when it was committed)
    kind: str                  # quote, contract, schedule, project, billing_event, cost, invoice, payment, account, dead_letter
    what: str                  # in words
    table: str | None = None
    key: str | None = None
    source: str | None = None  # the source change: "<database> <schema.table:key> LSN <n> tx <id>"
    committed_at: datetime | None = None
    after_commit_s: float | None = None


@dataclass
class Trace:
    asked: str
    contract_number: str | None
    trace_id: str | None
    quotes: list[dict] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)


def _one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return bool(_one(conn, "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
                     schema, table))


def resolve(conn: psycopg.Connection, asked: str) -> str | None:
    """The contract number of what was asked: a contract or quote number (a change order's
    too), an invoice number, or a trace id."""
    asked = asked.strip()
    for sql in ("select contract_number from dw.contract where contract_number = %s",
                "select contract_number from dw.contract where trace_id = %s",
                "select contract_number from dw.quote where quote_number = %s and contract_number is not null",
                "select contract_number from dw.receivable where invoice_number = %s and contract_number is not null"):
        try:
            found = _one(conn, sql, asked)
        except psycopg.errors.UndefinedTable:
            conn.rollback()
            continue
        if found:
            return found
    if audit.exists(conn):
        return _one(conn, "select contract_number from audit.sink_write where (trace_id = %s or row_key = %s)"
                          " and contract_number is not null order by seq limit 1", asked, asked)
    return None


def describe(table: str, before: dict | None, after: dict) -> tuple[str, str]:
    """(kind, words) of one write."""
    def changed(*fields: str) -> str:
        diff = changes(before, after) if before else {}
        return ", ".join(f"{f} {diff[f][0]} → {diff[f][1]}" for f in fields if f in diff)

    if table == "erp_inbound.contract":
        if before is None:
            return "contract", (f"contract {after['contract_number']} revision {after['revision']}: {after['commercial_model']}"
                                f" {after['contract_value']} {after['currency']}, {after['status']}")
        return "contract", f"contract changed: {changed('revision', 'status', 'contract_value', 'end_date', 'project_code')}"
    if table == "erp_inbound.billing_schedule":
        if before is None:
            return "schedule", (f"schedule {after['schedule_key']}: {after['billing_type']} {after['amount']} {after['currency']}"
                                f" planned {after['planned_date']}, {after['status']}")
        return "schedule", f"schedule {after['schedule_key']}: {changed('status', 'amount', 'planned_date')}"
    if table == "erp_inbound.billing_event":
        money = f"{after['amount']} {after['currency']}"
        if before is None:
            hold = f" (hold: {after['hold_reason']})" if after.get("hold_reason") else ""
            return "billing_event", f"billing event {after['billing_event_id']}: {after['event_type']} {money}, {after['status']}{hold}"
        old, new = before.get("status"), after.get("status")
        if old == "on_hold" and new == "ready":
            words = f"hold released ({before.get('hold_reason')})"
        elif new == "on_hold":
            words = f"held: {after.get('hold_reason')}"
        elif new == "billed":
            words = f"billed on invoice {after.get('invoice_number')}"
        elif new == "reversed":
            words = "reversed"
        elif old == "billed" and new == "ready":
            words = f"back to ready (invoice {before.get('invoice_number')} voided)"
        else:
            words = changed("status", "amount", "hold_reason", "invoice_number")
        return "billing_event", f"billing event {after['billing_event_id']} {money}: {words}"
    if table == "erp_inbound.project_cost":
        if before is None:
            return "cost", (f"cost {after['cost_event_id']}: {after['hours']} h {after['cost_amount']} {after['cost_currency']},"
                            f" {after['status']}")
        return "cost", f"cost {after['cost_event_id']}: {changed('status', 'hours', 'cost_amount')}"
    if table == "erp_inbound.receivable":
        if before is None:
            return "invoice", (f"invoice {after['invoice_number']}: gross {after['gross_amount']} {after['currency']},"
                               f" paid {after['paid_amount']}, {after['status']}")
        if before.get("paid_amount") != after.get("paid_amount"):
            return "payment", (f"invoice {after['invoice_number']}: paid {before.get('paid_amount')} → {after['paid_amount']}"
                               f" {after['currency']}, {after['status']}")
        return "invoice", f"invoice {after['invoice_number']}: {changed('status', 'gross_amount', 'dispute_reason')}"
    if table == "psa.project":
        return "project", f"PSA project {after.get('project_code')} provisioned"
    if table == "crm.account_financials":
        return "account", f"account financials: open {after.get('open_receivable')}, overdue {after.get('overdue_receivable')}"
    return "write", f"{table}: {changed(*after)}"


def trace(settings: Settings, asked: str, dead_letters: list | None = None) -> Trace | None:
    with psycopg.connect(settings.dsn("warehouse", "sync"), connect_timeout=5) as conn:
        contract = resolve(conn, asked)
        if contract is None:
            return None
        out = Trace(asked, contract, None)
        if _exists(conn, "dw", "quote"):
            cur = conn.execute("select quote_number, revision, status, approved_at from dw.quote where contract_number = %s"
                               " order by revision, quote_number", (contract,))
            out.quotes = [dict(zip([c.name for c in cur.description], row, strict=False)) for row in cur.fetchall()]
            for quote in out.quotes:
                if quote["approved_at"] is not None:
                    out.steps.append(Step(quote["approved_at"], "quote", f"quote {quote['quote_number']} revision "
                                          f"{quote['revision']} approved", "crm.quote", quote["quote_number"]))
        if _exists(conn, "dw", "receivable"):
            out.invoices = [r[0] for r in conn.execute("select invoice_number from dw.receivable where contract_number = %s"
                                                       " order by invoice_number", (contract,)).fetchall()]
        for row in audit.history(conn, contract):
            out.trace_id = out.trace_id or row["trace_id"]
            kind, words = describe(row["table_name"], row["before_row"], row["after_row"])
            out.steps.append(Step(written_at(row), kind, words, row["table_name"], row["row_key"], source_change(row),
                                  row["source_committed_at"], after_commit_s(row)))
    names = {contract, *(q["quote_number"] for q in out.quotes), *out.invoices}
    for letter in dead_letters or []:
        text = f"{letter.key or ''} {letter.value or ''} {letter.error}"
        if any(name and name in text for name in names):
            out.steps.append(Step(datetime.fromisoformat(letter.failed_at), "dead_letter",
                                  f"dead letter {letter.id}: {letter.reason}: {letter.error[:200]}",
                                  letter.source_topic, letter.id, f"LSN {letter.source_lsn}" if letter.source_lsn else None))
    out.steps.sort(key=lambda s: (s.at is None, s.at.timestamp() if s.at else 0))
    return out


def render(found: Trace | None, asked: str, console: Console | None = None) -> None:
    console = console or Console()
    if found is None:
        console.print(f"nothing known of {asked}: not a contract, quote, invoice number or trace id the sync has seen")
        return
    quotes = ", ".join(f"{q['quote_number']} (rev {q['revision']}, {q['status']})" for q in found.quotes) or "-"
    console.print(f"[bold]{found.contract_number}[/bold]  trace {found.trace_id or '-'}")
    console.print(f"quotes: {quotes}")
    console.print(f"invoices: {', '.join(found.invoices) or '-'}")
    table = Table(show_lines=False)
    for column in ("when", "step", "what", "source change", "after commit"):
        table.add_column(column, overflow="fold")
    for step in found.steps:
        delay = f"{step.after_commit_s:.3f} s" if step.after_commit_s is not None else ""
        when = step.at.isoformat(timespec="milliseconds") if step.at else ""
        table.add_row(when, step.kind, step.what, step.source or "", delay)
    console.print(table)
