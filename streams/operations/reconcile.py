"""``q2c reconcile``: compare the sources with the ERP and explain every difference.

The sources are read directly (SQL, not Kafka) into a fresh mirror and the same rules derive what
the ERP should hold; each difference to ``erp_inbound`` is reported with its cause. A difference is
*explained* when the sync's history or a rule accounts for it (a billed event whose source changed
later keeps its row and has a ``:REV``; work that came after its contract was cancelled is held);
anything else is unexplained and makes the exit code non-zero.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

from streams.canonical.models import Quote
from streams.capture.envelope import RowChange
from streams.capture.tables import all_mappings
from streams.config import Settings
from streams.rules import contract_life
from streams.rules.engagement import EngagementOutputs, derive
from streams.rules.pricing import approved_revisions
from streams.rules.receivable import receivable
from streams.state.mirror import SourceMirror
from streams.state.views import engagement_view, invoice_inputs

MISSING_EVENT_CAUSE = {
    "time": "approved billable time with no billing event",
    "expense": "approved billable expense with no billing event",
    "milestone": "accepted milestone with no billing event",
    "fixed_fee": "open fiscal period with no billing event",
    "retainer": "open fiscal period with no billing event",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str
    contract_number: str | None
    cause: str
    explained: bool = False
    detail: str = ""


def load_sources(settings: Settings) -> SourceMirror:
    mirror = SourceMirror()
    by_db: dict[str, list] = {}
    for mapping in all_mappings().values():
        by_db.setdefault(mapping.table_id.split(".")[0], []).append(mapping)
    for db, mappings in by_db.items():
        with psycopg.connect(settings.dsn(db, "capture"), row_factory=dict_row) as conn:
            for mapping in mappings:
                schema, table = mapping.table_id.split(".")
                for row in conn.execute(f"select * from {mapping.table_id}"):
                    key = {k: row[k] for k in mapping.key}
                    mirror.apply(RowChange(db, schema, table, "r", key, row, 0, None))
    return mirror


@dataclass
class ErpRows:
    events: dict[str, dict]
    receivables: dict[str, dict]
    contracts: dict[str, dict]
    schedule: dict[tuple[str, str], dict]


def _erp(settings: Settings) -> ErpRows:
    with psycopg.connect(settings.dsn("erp", "sync"), row_factory=dict_row) as conn:
        return ErpRows(
            events={r["billing_event_id"]: r for r in conn.execute("select * from erp_inbound.billing_event")},
            receivables={r["invoice_number"]: r for r in conn.execute("select * from erp_inbound.receivable")},
            contracts={r["contract_number"]: r for r in conn.execute("select * from erp_inbound.contract")},
            schedule={(r["contract_number"], r["schedule_key"]): r
                      for r in conn.execute("select * from erp_inbound.billing_schedule")},
        )


HELD_AFTER_CANCELLATION = {
    "time": "time approved", "expense": "expense approved", "milestone": "milestone accepted",
    "fixed_fee": "fiscal period opened", "retainer": "fiscal period opened",
}


def _engagement(contract: str, out: EngagementOutputs, cancelled: datetime | None, erp: ErpRows,
                current: Quote) -> list[Finding]:
    """What differs between the ERP and what the sources say for one engagement, and what the
    cancellation rules hold (explained: the difference between the sources and the billing queue
    is the rule)."""
    findings: list[Finding] = []
    have = erp.contracts.get(contract)
    if have is None:
        findings.append(Finding("contract_missing", contract, contract, "approved quote with no contract in the ERP"))
    else:
        if have["contract_value"] != out.contract.contract_value:
            findings.append(Finding("amount_differs", contract, contract, "contract value differs from the sources",
                                    detail=f"ERP {have['contract_value']} vs sources {out.contract.contract_value}"))
        if have["status"] != out.contract.status:
            findings.append(Finding("status_differs", contract, contract,
                                    f"contract is {have['status']}, the sources say {out.contract.status}"))
    for key, item in out.schedule.items():
        row = erp.schedule.get((contract, key))
        if row is not None and row["status"] != item.status:
            findings.append(Finding("status_differs", f"{contract}/{key}", contract,
                                    f"schedule item is {row['status']}, the sources say {item.status}"))
    for event_id, event in out.events.items():
        actual = erp.events.get(event_id)
        if actual is None:
            findings.append(Finding("missing_event", event_id, contract, MISSING_EVENT_CAUSE[event.event_type]))
        elif actual["amount"] != event.amount:
            findings.append(Finding("amount_differs", event_id, contract, "billing event amount differs from the sources",
                                    detail=f"ERP {actual['amount']} vs sources {event.amount}"))
        elif (actual["status"], actual["hold_reason"]) != (event.status, event.hold_reason):
            want = event.status + (f" ({event.hold_reason})" if event.hold_reason else "")
            findings.append(Finding("status_differs", event_id, contract, f"billing event is {actual['status']}, the sources say {want}",
                                    detail=actual["hold_reason"] or ""))
        elif event.hold_reason == "contract_cancelled":
            findings.append(Finding("held_contract_cancelled", event_id, contract,
                                    f"{HELD_AFTER_CANCELLATION[event.event_type]} after the contract was cancelled: "
                                    "held until a change order re-activates it", explained=True,
                                    detail=f"cancelled {cancelled:%Y-%m-%d %H:%M} UTC"))
    if out.contract.status == "cancelled" and cancelled is not None and not contract_life.cancellation_dated_by_source(current):
        # the CRM did not stamp the cancellation: the sync dated it by the commit time capture saw,
        # which the source tables do not keep, so what it decided cannot be checked from them
        findings = [
            Finding(f.kind, f.key, f.contract_number, f.cause, explained=True,
                    detail="cancellation dated by capture (the CRM left updated_at before approved_at)")
            if f.kind in ("amount_differs", "status_differs") else f
            for f in findings
        ]
    return findings


def reconcile(settings: Settings) -> list[Finding]:
    mirror = load_sources(settings)
    erp = _erp(settings)
    events, receivables = erp.events, erp.receivables
    findings: list[Finding] = []
    expected_ids: set[str] = set()
    for contract in sorted(mirror.contracts()):
        view = engagement_view(mirror, contract)
        out = derive(view)
        if out.contract is None:
            continue
        revisions = approved_revisions(view.quotes, view.lines)
        findings += _engagement(contract, out, contract_life.in_force(revisions), erp, revisions[-1][0])
        expected_ids.update(out.events)
    for event_id, actual in events.items():
        if event_id in expected_ids or actual["status"] == "reversed" or event_id.endswith(":REV"):
            continue
        if actual["status"] == "billed":
            explained = f"{event_id}:REV" in events
            findings.append(Finding("billed_event_changed_at_source", event_id, actual["contract_number"],
                                    "billed event whose source no longer qualifies"
                                        + (" (reversal queued)" if explained else " and no reversal"),
                                    explained=explained))
        else:
            findings.append(Finding("stale_event", event_id, actual["contract_number"],
                                    f"{actual['status']} event whose source no longer qualifies (should be reversed)"))
    known_ids = set(events)
    for line in mirror.all("finance.ar_invoice_line"):
        if line.src_ref and line.src_ref.strip() not in known_ids:
            findings.append(Finding("invoice_line_unknown_event", f"{line.inv_no}/{line.line_no}", None,
                                    "invoice line names a billing event the ERP does not have", detail=line.src_ref))
    for invoice in mirror.all("finance.ar_invoice_hdr"):
        inv, payments, contract, account_number = invoice_inputs(mirror, invoice.inv_no)
        want = receivable(inv, payments, contract, account_number)
        have = receivables.get(invoice.inv_no)
        if have is None:
            findings.append(Finding("receivable_missing", invoice.inv_no, contract, "invoice with no receivable in the ERP"))
            continue
        if contract is None:
            findings.append(Finding("receivable_without_contract", invoice.inv_no, None,
                                    "receivable matches no engagement (contract_ref and src_ref name none)",
                                    detail=f"contract_ref {invoice.contract_ref!r}"))
        for field in ("gross_amount", "net_amount", "tax_amount", "paid_amount"):
            if have[field] != getattr(want, field):
                findings.append(Finding("amount_differs", invoice.inv_no, contract, f"receivable {field} differs from the sources",
                                        detail=f"ERP {have[field]} vs sources {getattr(want, field)}"))
        if have["status"] != want.status:
            findings.append(Finding("status_differs", invoice.inv_no, contract,
                                    f"receivable is {have['status']}, the sources say {want.status}"))
    return findings


def report(findings: list[Finding]) -> str:
    """The findings as JSON, with how many are explained and how many not."""
    unexplained = [f for f in findings if not f.explained]
    return json.dumps({"unexplained": len(unexplained), "explained": len(findings) - len(unexplained),
                       "findings": [asdict(f) for f in findings]}, default=lambda v: str(v) if isinstance(v, Decimal) else v)
