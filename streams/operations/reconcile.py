"""``q2c reconcile``: compare the sources with the ERP and explain every difference.

The sources are read directly (SQL, not Kafka) into a fresh mirror and the same rules derive what
the ERP should hold; each difference to ``erp_inbound`` is reported with its cause. A difference is
*explained* when the sync's history accounts for it (a billed event whose source changed later
keeps its row and has a ``:REV``); anything else is unexplained and makes the exit code non-zero.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

from streams.capture.envelope import RowChange
from streams.capture.mapping import all_mappings
from streams.config import Settings
from streams.rules.engagement import derive
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


def _erp(settings: Settings) -> tuple[dict[str, dict], dict[str, dict], dict[str, dict]]:
    with psycopg.connect(settings.dsn("erp", "sync"), row_factory=dict_row) as conn:
        events = {r["billing_event_id"]: r for r in conn.execute("select * from erp_inbound.billing_event")}
        receivables = {r["invoice_number"]: r for r in conn.execute("select * from erp_inbound.receivable")}
        contracts = {r["contract_number"]: r for r in conn.execute("select * from erp_inbound.contract")}
    return events, receivables, contracts


def reconcile(settings: Settings) -> list[Finding]:
    mirror = load_sources(settings)
    events, receivables, contracts = _erp(settings)
    findings: list[Finding] = []
    expected_ids: set[str] = set()
    for contract in sorted(mirror.contracts()):
        out = derive(engagement_view(mirror, contract))
        if out.contract is None:
            continue
        if contract not in contracts:
            findings.append(Finding("contract_missing", contract, contract, "approved quote with no contract in the ERP"))
        elif contracts[contract]["contract_value"] != out.contract.contract_value:
            findings.append(Finding("amount_differs", contract, contract, "contract value differs from the sources",
                                    detail=f"ERP {contracts[contract]['contract_value']} vs sources {out.contract.contract_value}"))
        for event_id, event in out.events.items():
            expected_ids.add(event_id)
            actual = events.get(event_id)
            if actual is None:
                findings.append(Finding("missing_event", event_id, contract, MISSING_EVENT_CAUSE[event.event_type]))
            elif actual["amount"] != event.amount:
                findings.append(Finding("amount_differs", event_id, contract, "billing event amount differs from the sources",
                                        detail=f"ERP {actual['amount']} vs sources {event.amount}"))
            elif actual["status"] != event.status:
                findings.append(Finding("status_differs", event_id, contract, f"billing event is {actual['status']}, the sources say {event.status}",
                                        detail=actual["hold_reason"] or ""))
    for event_id, actual in events.items():
        if event_id in expected_ids or actual["status"] == "reversed" or event_id.endswith(":REV"):
            continue
        if actual["status"] == "billed":
            explained = f"{event_id}:REV" in events
            findings.append(Finding("billed_event_changed_at_source", event_id, actual["contract_number"],
                                    "billed event whose source no longer qualifies" + (" (reversal queued)" if explained else " and no reversal"),
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
            findings.append(Finding("status_differs", invoice.inv_no, contract, f"receivable is {have['status']}, the sources say {want.status}"))
    return findings


def report(findings: list[Finding], as_json: bool) -> str:
    unexplained = [f for f in findings if not f.explained]
    if as_json:
        return json.dumps({"unexplained": len(unexplained), "explained": len(findings) - len(unexplained),
                           "findings": [asdict(f) for f in findings]}, default=lambda v: str(v) if isinstance(v, Decimal) else v)
    if not findings:
        return "the ERP agrees with the sources"
    lines = [f"{'ok ' if f.explained else '!! '}{f.kind:<30} {f.key:<40} {f.cause}{' (' + f.detail + ')' if f.detail else ''}"
             for f in findings]
    lines.append(f"{len(unexplained)} unexplained, {len(findings) - len(unexplained)} explained")
    return "\n".join(lines)
