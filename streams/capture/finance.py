"""Legacy finance rows → canonical customers, periods, tax rates, invoices and payments.

The legacy quirks are undone here: char columns are blank-padded (trimmed), and timestamps are
Europe/London local time without zone (made UTC).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from streams.canonical.models import Customer, FiscalPeriod, Invoice, InvoiceLine, Payment, TaxRate
from streams.capture.mapping import TableMapping

LONDON = ZoneInfo("Europe/London")


def london_to_utc(local: datetime) -> datetime:
    """A naive Europe/London wall-clock time → UTC. In the autumn's repeated hour the first
    (summer-time) reading is taken; a time that the spring jump skips is read as summer time."""
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return local.replace(tzinfo=LONDON, fold=0).astimezone(UTC)


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        if isinstance(value, str):
            value = value.strip()
            if value == "" and name in ("crm_account_no", "contract_ref", "src_ref", "dispute_reason", "descr"):
                value = None
        elif isinstance(value, datetime):
            value = london_to_utc(value)
        out[name] = value
    return out


TABLES = {
    m.table_id: m
    for m in (
        TableMapping("finance.ar_customer", "customer", Customer, ("cust_no",), normalise, shared=True),
        TableMapping("finance.gl_period", "fiscal_period", FiscalPeriod, ("period_cd",), normalise, shared=True),
        TableMapping("finance.gl_tax_rate", "tax_rate", TaxRate, ("tax_cd", "country_cd", "valid_from"),
                     normalise, ("valid_from",), shared=True),
        TableMapping("finance.ar_invoice_hdr", "invoice", Invoice, ("inv_no",), normalise),
        TableMapping("finance.ar_invoice_line", "invoice_line", InvoiceLine, ("inv_no", "line_no"), normalise),
        TableMapping("finance.ar_receipt", "payment", Payment, ("rcpt_no",), normalise),
    )
}
