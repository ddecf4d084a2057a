"""Read the mirror into the inputs of the pure rules."""
from __future__ import annotations

from streams.canonical.models import Invoice, Payment
from streams.rules.engagement import EngagementView, invoice_billing
from streams.state.mirror import SourceMirror, _norm, contract_of_event_ref


def engagement_view(mirror: SourceMirror, contract_number: str, rows: bool = True) -> EngagementView:
    """What the rules read of one engagement. ``rows`` False: without its time entries, expenses,
    their people and the invoice lines naming its events (what ``derive_head`` needs; the
    incremental path reads those one row at a time)."""
    quotes = mirror.engagement_quotes(contract_number)
    lines = {q.id: mirror.find("crm.quote_line", "by_quote", q.id) for q in quotes}
    current = next((q for q in reversed(quotes) if q.status in ("approved", "superseded", "cancelled")), quotes[-1] if quotes else None)
    client = mirror.get("crm.account", current.account_id) if current else None
    project = mirror.engagement_project(contract_number)
    pid = project.id if project else None
    time_entries = mirror.find("psa.timesheet_entry", "by_project", pid) if pid is not None and rows else []
    assignments = mirror.find("psa.assignment", "by_project", pid) if pid is not None else []
    resource_ids = {t.resource_id for t in time_entries} | {a.resource_id for a in assignments} if rows else set()
    invoice_lines = []
    seen = set()
    for line in mirror.find("finance.ar_invoice_line", "by_src_contract", contract_number) if rows else ():
        invoice = mirror.get("finance.ar_invoice_hdr", line.inv_no)
        if invoice is not None and (line.inv_no, line.line_no) not in seen:
            seen.add((line.inv_no, line.line_no))
            invoice_lines.append((line, invoice))
    return EngagementView(
        contract_number=contract_number,
        quotes=quotes,
        lines=lines,
        client=client,
        project=project,
        milestones=mirror.find("psa.milestone", "by_project", pid) if pid is not None else [],
        assignments=assignments,
        time_entries=time_entries,
        expenses=mirror.find("psa.expense_line", "by_project", pid) if pid is not None and rows else [],
        resources={r: mirror.get("psa.resource", r) for r in resource_ids if mirror.get("psa.resource", r)},
        periods={p.period_cd: p for p in mirror.all("finance.gl_period")},
        tax_rates=[t for t in mirror.all("finance.gl_tax_rate") if client and t.country_cd == client.billing_country],
        invoice_lines=invoice_lines,
    )


def recorded_view(mirror: SourceMirror, contract_number: str) -> tuple[EngagementView, set[str]]:
    """The engagement's whole view, and the refs of the rows it read; what it asked for becomes
    the engagement's lookups (``Readers.replace``): changes under them reach it from now on."""
    lookups: set[str] = set()
    with mirror.recording(lookups) as refs:
        view = engagement_view(mirror, contract_number)
    mirror.readers.replace(contract_number, lookups)
    return view, refs


def invoice_inputs(mirror: SourceMirror, inv_no: str) -> tuple[Invoice | None, list[Payment], str | None, str | None]:
    """(invoice, payments, contract number, client account number) of one invoice."""
    invoice = mirror.get("finance.ar_invoice_hdr", inv_no)
    if invoice is None:
        return None, [], None, None
    client = mirror.client_of_invoice(invoice)
    customer = mirror.get("finance.ar_customer", invoice.cust_no)
    account_number = client.account_number if client else (customer.crm_account_no if customer else None)
    return invoice, mirror.find("finance.ar_receipt", "by_invoice", inv_no), mirror.contract_of_invoice(invoice), account_number


def account_invoices(mirror: SourceMirror, account_id: int) -> list[tuple[Invoice, list[Payment]]]:
    account = mirror.get("crm.account", account_id)
    if account is None:
        return []
    result = []
    for customer in mirror.find("finance.ar_customer", "by_account_norm", _norm(account.account_number)):
        for invoice in mirror.find("finance.ar_invoice_hdr", "by_customer", customer.cust_no):
            result.append((invoice, mirror.find("finance.ar_receipt", "by_invoice", invoice.inv_no)))
    return result


class InvoicedEvents:
    """billing_event_id → invoice number, read from the mirror one event at a time (what
    ``invoice_billing`` makes of every invoice line naming the event)."""

    def __init__(self, mirror: SourceMirror):
        self.mirror = mirror
        self._found: dict[str, str | None] = {}  # one derivation asks ``in`` and then ``[]``

    def get(self, event_id: str, default: str | None = None) -> str | None:
        if event_id not in self._found:
            lines = []
            # a line naming the event names its contract too: whether the contract has lines (one
            # scan an engagement) says whether the event's own (a scan an event) can find any
            contract = contract_of_event_ref(event_id)
            named = contract is None or self.mirror.any("finance.ar_invoice_line", "by_src_contract", contract)
            for line in self.mirror.find("finance.ar_invoice_line", "by_event", event_id) if named else ():
                invoice = self.mirror.get("finance.ar_invoice_hdr", line.inv_no)
                if invoice is not None:
                    lines.append((line, invoice))
            self._found[event_id] = invoice_billing(lines).get(event_id)
        found = self._found[event_id]
        return default if found is None else found

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.get(event_id) is not None

    def __getitem__(self, event_id: str) -> str:
        found = self.get(event_id)
        if found is None:
            raise KeyError(event_id)
        return found
