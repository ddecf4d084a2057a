"""What every captured table maps to: its canonical model and its primary key."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from pydantic import ValidationError

from streams.canonical.models import Canonical
from streams.capture.envelope import EPOCH, RowChange


EVENT_TYPE_OF_TABLE = {
    "crm.account": "client", "crm.quote": "quote", "crm.quote_line": "quote_line",
    "psa.resource": "resource", "psa.project": "project", "psa.milestone": "billing_milestone",
    "psa.assignment": "assignment", "psa.timesheet_entry": "time_entry", "psa.expense_line": "expense_item",
    "finance.ar_customer": "customer", "finance.gl_period": "fiscal_period", "finance.gl_tax_rate": "tax_rate",
    "finance.ar_invoice_hdr": "invoice", "finance.ar_invoice_line": "invoice_line", "finance.ar_receipt": "payment",
}


def source_updated_at(row: dict[str, Any]) -> dict[str, Any]:
    """The source's ``updated_at`` as the model's ``source_updated_at`` (the warehouse keeps an
    ``updated_at`` of its own: when it loaded the row)."""
    out = dict(row)
    if "updated_at" in out:
        out["source_updated_at"] = out.pop("updated_at")
    return out


class InvalidRow(ValueError):
    """A row that does not fit its canonical model; the text says which fields and why."""


@dataclass(frozen=True)
class TableMapping:
    table_id: str                   # 'psa.timesheet_entry'
    model: type[Canonical]
    key: tuple[str, ...]
    normalise: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row
    date_keys: tuple[str, ...] = ()  # key columns that are dates (keys arrive without a schema)

    def ref(self, key: dict[str, Any]) -> str:
        """``<schema>.<table>:<primary key>``; composite keys are joined with ``/``."""
        try:
            return f"{self.table_id}:" + "/".join(str(self.normalise_key(key)[k]) for k in self.key)
        except KeyError as exc:
            raise InvalidRow(f"{self.table_id}: the key lacks {exc}") from exc

    def normalise_key(self, key: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in key.items():
            if isinstance(v, str):
                v = v.strip()
            if k in self.date_keys and isinstance(v, int):
                v = EPOCH + timedelta(days=v)
            out[k] = v
        return out

    def to_model(self, row: dict[str, Any]) -> Canonical:
        try:
            return self.model.model_validate(self.normalise(row))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
            )
            raise InvalidRow(f"{self.table_id} row does not fit {self.model.__name__}: {problems}") from exc


def mapping_for(change: RowChange) -> TableMapping | None:
    return all_mappings().get(change.table_id)


def all_mappings() -> dict[str, TableMapping]:
    from streams.capture import crm, finance, psa

    return {**crm.TABLES, **psa.TABLES, **finance.TABLES}
