"""The ledger: what the sync has written, per engagement, invoice and account.

``derive`` needs it to reverse what was written before, and the processor diffs against it so the
sinks get only real changes. It is kept in memory as models and persisted one output row per key
(Faust table ``q2c-ledger``), so a batch writes only the rows that changed whatever the size of the
engagement: a whole engagement in one entry would be re-serialised on every change and would pass
Kafka's default 1 MB message limit at about 1,200 time entries.

Keys: ``eng:<contract>`` (the contract), ``eng:<contract>|schedule|<key>``,
``eng:<contract>|event|<id>``, ``eng:<contract>|cost|<id>``, ``eng:<contract>|linked|<source ref>``,
``inv:<invoice>``, ``acct:<account id>``. No I/O.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from streams.canonical.models import BillingEvent, Contract, ProjectCost, ScheduleItem
from streams.rules.engagement import EngagementOutputs

SEP = "|"
PARTS = {"schedule": ScheduleItem, "event": BillingEvent, "cost": ProjectCost}
FIELD_OF_PART = {"schedule": "schedule", "event": "events", "cost": "costs"}

# a ledger row on its way to the table: a model (engagement rows), a JSON doc (invoices, accounts,
# linked markers, the contract entry) or None (the row is gone)
Row = Any


class Ledger:
    def __init__(self) -> None:
        self.engagements: dict[str, EngagementOutputs] = {}
        self.linked: dict[str, set[str]] = defaultdict(set)
        self.docs: dict[str, dict] = {}  # inv:, acct:

    # --- reading -----------------------------------------------------------------------------

    def outputs(self, contract: str) -> EngagementOutputs | None:
        return self.engagements.get(contract)

    def doc(self, key: str) -> dict | None:
        return self.docs.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.docs

    def linked_refs(self, contract: str) -> set[str]:
        return self.linked.get(contract, set())

    def holds(self, key: str) -> bool:
        """Whether the ledger has the row ``key``."""
        head, _, rest = key.partition(SEP)
        if not head.startswith("eng:"):
            return key in self.docs
        contract = head[len("eng:"):]
        if not rest:
            return contract in self.engagements
        part, _, item = rest.partition(SEP)
        if part == "linked":
            return item in self.linked.get(contract, ())
        outputs = self.engagements.get(contract)
        return outputs is not None and item in getattr(outputs, FIELD_OF_PART[part])

    def rows_of(self, contract: str) -> dict[str, Any]:
        """Every row of one engagement, as the table keeps them (to hand the engagement over)."""
        outputs = self.engagements.get(contract)
        if outputs is None:
            return {}
        head = f"eng:{contract}"
        rows: dict[str, Any] = {head: {"contract": outputs.contract.model_dump(mode="json") if outputs.contract else None}}
        for part, attr in FIELD_OF_PART.items():
            rows.update({f"{head}{SEP}{part}{SEP}{k}": v.model_dump(mode="json") for k, v in getattr(outputs, attr).items()})
        rows.update({f"{head}{SEP}linked{SEP}{ref}": True for ref in self.linked.get(contract, ())})
        return rows

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
    def engagement_rows(contract: str, old: EngagementOutputs | None, new: EngagementOutputs,
                        changed: dict[str, dict[str, Row]], linked_before: set[str],
                        linked: Iterable[str]) -> dict[str, Row]:
        """The ledger rows of ``changed`` (``Ledger.changed(old, new)``), the contract when it
        differs from ``old`` (None: never written), and the refs linked for the first time."""
        rows: dict[str, Row] = {}
        head = f"eng:{contract}"
        if old is None or new.contract != old.contract:
            rows[head] = {"contract": new.contract.model_dump(mode="json") if new.contract else None}
        for part, items in changed.items():
            for key, model in items.items():
                rows[f"{head}{SEP}{part}{SEP}{key}"] = model
        for ref in set(linked) - linked_before:
            rows[f"{head}{SEP}linked{SEP}{ref}"] = True
        return rows

    # --- writing -----------------------------------------------------------------------------

    def apply(self, rows: dict[str, Row]) -> None:
        """Record rows the sinks have written (models or docs)."""
        for key, row in rows.items():
            self._put(key, row)

    def load(self, key: str, doc: Any) -> Row:
        """Restore one row from the table (a JSON doc); the row as held (a model or the doc)."""
        rest = key.partition(SEP)[2]
        if rest and doc is not None:
            part = rest.partition(SEP)[0]
            if part in PARTS:
                doc = PARTS[part].model_validate(doc)
        self._put(key, doc)
        return doc

    def _put(self, key: str, row: Row) -> None:
        head, _, rest = key.partition(SEP)
        if not head.startswith("eng:"):
            if row is None:
                self.docs.pop(key, None)
            else:
                self.docs[key] = row
            return
        contract = head[len("eng:"):]
        if not rest and row is None:  # the engagement handed over (scaled out): forget it all
            self.engagements.pop(contract, None)
            self.linked.pop(contract, None)
            return
        if row is None and contract not in self.engagements:
            return
        outputs = self.engagements.setdefault(contract, EngagementOutputs())
        if not rest:
            doc = row
            outputs.contract = Contract.model_validate(doc["contract"]) if doc.get("contract") else None
            return
        part, _, item = rest.partition(SEP)
        if part == "linked":
            (self.linked[contract].add if row is not None else self.linked[contract].discard)(item)
            return
        target = getattr(outputs, FIELD_OF_PART[part])
        if row is None:
            target.pop(item, None)
        else:
            target[item] = row

    @staticmethod
    def persisted(row: Row) -> Any:
        """What the table keeps for a row (JSON-safe)."""
        return row.model_dump(mode="json") if hasattr(row, "model_dump") else row

    def snapshot(self) -> dict[str, dict]:
        """Everything, in the nested shape a person reads (tests, diagnostics)."""
        out: dict[str, dict] = {}
        for contract, o in self.engagements.items():
            out[f"eng:{contract}"] = {
                "contract": o.contract.model_dump(mode="json") if o.contract else None,
                "schedule": {k: v.model_dump(mode="json") for k, v in o.schedule.items()},
                "events": {k: v.model_dump(mode="json") for k, v in o.events.items()},
                "costs": {k: v.model_dump(mode="json") for k, v in o.costs.items()},
            }
        out.update(self.docs)
        return out

