"""Every source table the sync captures, once: its mapping (``streams.capture.mapping``) by table
id. The topics the worker reads, the canonical event of a source row, the warehouse keys and
reconcile's reading of the sources all come from here."""
from __future__ import annotations

from streams.capture import crm, finance, psa
from streams.capture.envelope import RowChange
from streams.capture.mapping import TableMapping

TABLES: dict[str, TableMapping] = {**crm.TABLES, **psa.TABLES, **finance.TABLES}
EVENT_TYPE_OF_TABLE: dict[str, str] = {m.table_id: m.event_type for m in TABLES.values()}


def all_mappings() -> dict[str, TableMapping]:
    return TABLES


def mapping_for(change: RowChange) -> TableMapping | None:
    return TABLES.get(change.table_id)
