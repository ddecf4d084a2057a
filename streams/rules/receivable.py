"""Invoices and cash: receivables with payments applied, and the account team's financials."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from streams.canonical.models import Invoice, Payment, Receivable
from streams.rules import ids

STATUS = {"DR": "draft", "IS": "issued", "DP": "disputed", "PP": "partially_paid", "PD": "paid", "VD": "void"}
OPEN_STATUSES = ("IS", "DP", "PP")


def receivable(invoice: Invoice, payments: Iterable[Payment], contract_number: str | None, client_account_number: str | None) -> Receivable:
    paid = sum((p.amt for p in payments), Decimal("0.00"))
    return Receivable(
        invoice_number=invoice.inv_no, contract_number=contract_number,
        client_account_number=client_account_number, invoice_date=invoice.inv_dt, due_date=invoice.due_dt,
        currency=invoice.curr_cd, net_amount=invoice.net_amt, tax_amount=invoice.tax_amt,
        gross_amount=invoice.gross_amt, paid_amount=paid, status=STATUS[invoice.status_cd],
        dispute_reason=invoice.dispute_reason,
        trace_id=ids.trace_id(contract_number) if contract_number else None,
    )


@dataclass(frozen=True)
class AccountFinancials:
    """crm.account_financials for one account."""
    account_id: int
    open_receivable: Decimal
    overdue_receivable: Decimal
    disputed_invoices: int
    last_invoice_number: str | None
    last_invoice_status: str | None
    last_payment_at: date | None


def account_financials(account_id: int, invoices: Iterable[tuple[Invoice, list[Payment]]], as_of: date) -> AccountFinancials:
    """Open = gross − paid of issued, disputed and partly paid invoices; overdue = the open part
    of those past their due date on ``as_of``. Drafts and void invoices count for nothing but
    'last invoice' ignores only drafts (a void invoice is still the last one the client got)."""
    open_total = overdue = Decimal("0.00")
    disputed = 0
    last: Invoice | None = None
    last_payment: date | None = None
    for invoice, payments in invoices:
        paid = sum((p.amt for p in payments), Decimal("0.00"))
        if invoice.status_cd in OPEN_STATUSES:
            outstanding = invoice.gross_amt - paid
            open_total += outstanding
            if invoice.due_dt < as_of:
                overdue += outstanding
        if invoice.status_cd == "DP":
            disputed += 1
        if invoice.status_cd != "DR" and (last is None or (invoice.inv_dt, invoice.inv_no) > (last.inv_dt, last.inv_no)):
            last = invoice
        for p in payments:
            last_payment = max(last_payment, p.rcpt_dt) if last_payment else p.rcpt_dt
    return AccountFinancials(
        account_id=account_id, open_receivable=open_total, overdue_receivable=overdue,
        disputed_invoices=disputed, last_invoice_number=last.inv_no if last else None,
        last_invoice_status=STATUS[last.status_cd] if last else None, last_payment_at=last_payment,
    )
