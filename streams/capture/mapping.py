"""How a captured table maps to the canonical world: its model, its event type (the canonical
topic and the warehouse table) and its primary key. The tables themselves are listed once, in
``streams.capture.tables``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import Any, get_args

from pydantic import ValidationError

from streams.canonical.models import Canonical
from streams.capture.envelope import from_schemaless

# model field → the source column it is read from, where the two differ
RENAMED = {"source_updated_at": "updated_at"}


def source_updated_at(row: dict[str, Any]) -> dict[str, Any]:
    """The source's ``updated_at`` as the model's ``source_updated_at`` (the warehouse keeps an
    ``updated_at`` of its own: when it loaded the row)."""
    out = dict(row)
    if "updated_at" in out:
        out["source_updated_at"] = out.pop("updated_at")
    return out


def temporal_columns(model: type[Canonical]) -> dict[str, type]:
    """The source columns a model reads as ``date``, ``datetime`` or ``time`` (optional or not)."""
    found = {}
    for name, info in model.model_fields.items():
        kinds = {info.annotation, *get_args(info.annotation)}
        for kind in (datetime, date, time):  # datetime first: it is a subclass of date
            if kind in kinds:
                found[RENAMED.get(name, name)] = kind
                break
    return found


class InvalidRow(ValueError):
    """A row that does not fit its canonical model; the text says which fields and why."""


@dataclass(frozen=True)
class TableMapping:
    table_id: str                   # 'psa.timesheet_entry'
    event_type: str                 # 'time_entry': its canonical topic and warehouse table
    model: type[Canonical]
    key: tuple[str, ...]            # the primary key: of the source row, of the model, of the warehouse table
    normalise: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row
    date_keys: tuple[str, ...] = ()  # key columns that are dates (keys arrive without a schema)
    shared: bool = False            # reference data of many engagements (a person, a client): never one engagement's

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
            if k in self.date_keys:
                v = from_schemaless(v, date)
            out[k] = v
        return out

    @cached_property
    def temporal(self) -> dict[str, type]:
        return temporal_columns(self.model)

    def to_model(self, row: dict[str, Any]) -> Canonical:
        """A source row (as decoded: with or without its schema) → its canonical model."""
        try:
            undecoded = {c: from_schemaless(row[c], kind) for c, kind in self.temporal.items() if type(row.get(c)) in (int, str)}
        except (OverflowError, ValueError) as exc:
            raise InvalidRow(f"{self.table_id} row has a date or time Debezium could not have written: {exc}") from exc
        if undecoded:
            row = {**row, **undecoded}
        try:
            return self.model.model_validate(self.normalise(row))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
            )
            raise InvalidRow(f"{self.table_id} row does not fit {self.model.__name__}: {problems}") from exc
