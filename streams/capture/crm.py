"""CRM rows → canonical clients, quotes and quote lines."""
from streams.canonical.models import Client, Quote, QuoteLine
from streams.capture.mapping import TableMapping, source_updated_at

TABLES = {
    m.table_id: m
    for m in (
        TableMapping("crm.account", "client", Client, ("id",), shared=True),
        TableMapping("crm.quote", "quote", Quote, ("id",), source_updated_at),
        TableMapping("crm.quote_line", "quote_line", QuoteLine, ("id",)),
    )
}
