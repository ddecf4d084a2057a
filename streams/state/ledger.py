"""The ledger: what the sync has written, per engagement, invoice and account.

``derive`` needs it to reverse what was written before, and the processor diffs against it so the
sinks get only real changes. It keeps one output row per key in a ``Store`` (on the heap, or the
worker's changelog-backed table ``q2c-ledger`` read on demand), so a batch writes only the rows
that changed whatever the size of the engagement, and reads only those it touches: a whole
engagement in one entry would be re-serialised on every change and would pass Kafka's default
1 MB message limit at about 1,200 time entries.

Keys (``streams.state.keys``): ``EngagementKey`` (the contract, and its schedule items, events,
costs and linked source rows), ``InvoiceKey``, ``AccountKey``. No I/O.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.canonical.models import BillingEvent, Contract, ProjectCost, ScheduleItem
from streams.rules.engagement import EngagementOutputs
from streams.state.keys import EngagementKey, ledger_key
from streams.state.store import MemoryStore, PrefixView, Store

PARTS = {"schedule": ScheduleItem, "event": BillingEvent, "cost": ProjectCost}
FIELD_OF_PART = {"schedule": "schedule", "event": "events", "cost": "costs"}

# a ledger row on its way to the table: a model (engagement rows), a JSON doc (invoices, accounts,
# linked markers, the contract entry) or None (the row is gone)
Row = Any


MODEL_FORMAT = b"\x01"  # an engagement row: the format byte and the model's JSON


class LedgerCodec:
    """Ledger rows as the table keeps them (bytes): engagement rows (schedule items, events,
    costs) as the model's own JSON, the rest as JSON documents. JSON documents of model dumps (a
    table written by an earlier version, rows handed over in a bundle) are read too."""

    uncached = ()

    def encode(self, key: str, value: Any) -> bytes:
        if hasattr(value, "model_dump_json"):
            return MODEL_FORMAT + value.model_dump_json().encode()
        return json.dumps(value).encode()

    def decode(self, key: str, doc: Any) -> Any:
        model = _model_of(key)
        if isinstance(doc, bytes) and doc[:1] == MODEL_FORMAT:
            return model.model_validate_json(doc[1:])
        if isinstance(doc, (bytes, str)):
            doc = json.loads(doc)
        return model.model_validate(doc) if model is not None else doc


def _model_of(key: str) -> Any:
    """The model of an engagement row's key (an event's: ``BillingEvent``), else None."""
    parsed = ledger_key(key)
    return PARTS.get(parsed.part) if isinstance(parsed, EngagementKey) and parsed.part else None


@dataclass
class StoredOutputs:
    """What was written for one engagement, read on demand (``Ledger.stored``); the full
    ``EngagementOutputs`` is ``Ledger.outputs``."""
    contract: Contract | None
    schedule: dict[str, ScheduleItem]
    events: PrefixView  # event id -> BillingEvent
    costs: PrefixView  # cost event id -> ProjectCost
    provision: None = None


class Ledger:
    def __init__(self, store: Store | None = None) -> None:
        self.store: Store = store if store is not None else MemoryStore()

    # --- reading -----------------------------------------------------------------------------

    def outputs(self, contract: str) -> EngagementOutputs | None:
        """Everything written for one engagement; None when nothing was."""
        head = self.store.get(EngagementKey(contract).text)
        outputs = EngagementOutputs(contract=_contract(head))
        found = head is not None
        for part, attr in FIELD_OF_PART.items():
            items = getattr(outputs, attr)
            items.update(PrefixView(self.store, EngagementKey.prefix(contract, part)).items())
            found = found or bool(items)
        if not found:  # an engagement of linked rows only is still one the ledger has
            found = next(iter(self.store.scan(EngagementKey.prefix(contract, "linked"))), None) is not None
        return outputs if found else None

    def stored(self, contract: str) -> StoredOutputs | None:
        """The engagement's contract and schedule, and its events and costs one at a time; None
        when its contract row was never written."""
        head = self.store.get(EngagementKey(contract).text)
        if head is None:
            return None
        schedule = dict(PrefixView(self.store, EngagementKey.prefix(contract, "schedule")).items())
        return StoredOutputs(_contract(head), schedule, PrefixView(self.store, EngagementKey.prefix(contract, "event")),
                             PrefixView(self.store, EngagementKey.prefix(contract, "cost")))

    def doc(self, key: str) -> dict | None:
        return self.store.get(key)

    def __contains__(self, key: str) -> bool:
        return self.holds(key)

    def linked(self, contract: str, refs: Iterable[str], every: bool = False) -> set[str]:
        """Those of ``refs`` already published with the engagement's contract number: read one at a
        time, or (``every``: ``refs`` are all of the engagement's rows, a full derivation) in one
        scan of the engagement's markers."""
        linked = PrefixView(self.store, EngagementKey.prefix(contract, "linked"))
        refs = set(refs)
        if every:
            return refs & set(linked)
        return {ref for ref in refs if ref in linked}

    def holds(self, key: str) -> bool:
        """Whether the ledger has the row ``key``."""
        return self.store.get(key) is not None

    def rows_of(self, contract: str) -> dict[str, Any]:
        """Every row of one engagement, as the table keeps them (to hand the engagement over)."""
        head_key = EngagementKey(contract).text
        head = self.store.get(head_key)
        rows = {key: self.persisted(row) for key, row in self.store.scan(EngagementKey.prefix(contract))}
        if head is None and not rows:
            return {}
        return {head_key: head if head is not None else {"contract": None}, **rows}

    # --- the rows of one engagement's change -------------------------------------------------

    @staticmethod
    def changed(old: EngagementOutputs | None, new: EngagementOutputs) -> dict[str, dict[str, Row]]:
        """Per part (schedule, event, cost): the items of ``new`` that differ from ``old``, and
        None for the items ``new`` no longer has. The sinks and the ledger rows share it."""
        old = old or EngagementOutputs()
        diff: dict[str, dict[str, Row]] = {}
        for part, attr in FIELD_OF_PART.items():
            before, after = getattr(old, attr), getattr(new, attr)
            rows = {key: model for key, model in after.items() if before.get(key) != model}
            rows.update({key: None for key in before.keys() - after.keys()})
            diff[part] = rows
        return diff

    @staticmethod
    def engagement_rows(contract: str, old: EngagementOutputs | StoredOutputs | None, new: EngagementOutputs,
                        changed: dict[str, dict[str, Row]], linked_before: set[str],
                        linked: Iterable[str]) -> dict[str, Row]:
        """The ledger rows of ``changed`` (``Ledger.changed(old, new)``), the contract when it
        differs from ``old`` (None: never written), and the refs linked for the first time."""
        rows: dict[str, Row] = {}
        if old is None or new.contract != old.contract:
            rows[EngagementKey(contract).text] = {"contract": new.contract.model_dump(mode="json") if new.contract else None}
        for part, items in changed.items():
            for key, model in items.items():
                rows[EngagementKey(contract, part, key).text] = model
        for ref in set(linked) - linked_before:
            rows[EngagementKey(contract, "linked", ref).text] = True
        return rows

    # --- writing -----------------------------------------------------------------------------

    def apply(self, rows: dict[str, Row]) -> None:
        """Record rows the sinks have written (models or docs; None: the row is gone)."""
        for key, row in rows.items():
            self._put(key, row)

    def load(self, key: str, doc: Any) -> Row:
        """Hold one row given as the table keeps it (a JSON doc); the row as held."""
        row = LedgerCodec().decode(key, doc) if doc is not None else None
        self._put(key, row)
        return row

    def _put(self, key: str, row: Row) -> None:
        if row is not None:
            self.store.put(key, row)
            return
        parsed = ledger_key(key)
        if isinstance(parsed, EngagementKey) and parsed.part is None:  # handed over (scaled out): forget it all
            for item, _ in list(self.store.scan(EngagementKey.prefix(parsed.contract))):
                self.store.delete(item)
        self.store.delete(key)

    @staticmethod
    def persisted(row: Row) -> Any:
        """What the table keeps for a row (JSON-safe)."""
        return row.model_dump(mode="json") if hasattr(row, "model_dump") else row

    def snapshot(self) -> dict[str, dict]:
        """Everything, in the nested shape a person reads (tests, diagnostics)."""
        out: dict[str, dict] = {}
        for key, row in self.store.scan(""):
            parsed = ledger_key(key)
            if not isinstance(parsed, EngagementKey):
                out[key] = row
                continue
            entry = out.setdefault(EngagementKey(parsed.contract).text, {"contract": None, "schedule": {}, "events": {}, "costs": {}})
            if parsed.part is None:
                entry["contract"] = row.get("contract")
            elif parsed.part in FIELD_OF_PART:
                entry[FIELD_OF_PART[parsed.part]][parsed.item] = row.model_dump(mode="json")
        return out


def _contract(head: dict | None) -> Contract | None:
    return Contract.model_validate(head["contract"]) if head and head.get("contract") else None
