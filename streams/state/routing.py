"""Routing engagements to the workers that derive them (scaling out). No I/O.

Debezium keys a row by its own primary key (a time entry by its id), and the rules of one engagement
read rows of many tables. With several workers, the worker that reads the source topics (the
router: a single worker, since the source topics have one partition each, as PostgreSQL decodes
each database's log in one ordered stream, and a source transaction is applied whole) keeps the
full mirror and resolves which engagements a change touches, as one worker does. For each
of them it ships a *bundle*: the rows the engagement's rules read (recorded while building its view,
``SourceMirror.recording``) that changed since they were last shipped, and the refs that left the
view (a project moved to another quote), keyed by contract number to the partition
``engagement_partition`` names. The worker owning that partition keeps a copy of each of its
engagements' rows (``EngagementCopies``) and derives there with the same ``Processor``: a copy
holding exactly the rows a view read answers every read of that view the same way.

A bundle is cut into parts of at most ``ROWS_PER_PART`` rows (Kafka's message size); the receiving
side derives only once the last part is applied, so an engagement is never derived from half a
bundle. Receivables and account financials read invoices across engagements and stay with the
router, which has every row.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.state.keys import EngagementRowKey
from streams.state.mirror import Applied, SourceMirror
from streams.state.store import MemoryStore, PrefixView, Store
from streams.state.views import engagement_view, recorded_view

ROWS_PER_PART = 200


def engagement_partition(contract: str, partitions: int) -> int:
    """The partition of ``q2c.changes.by-engagement`` (and of the engagement tables) that owns an
    engagement: stable across processes and versions (CRC-32, not Python's salted ``hash``)."""
    return zlib.crc32(contract.encode()) % partitions


@dataclass(frozen=True)
class BundlePart:
    contract: str
    rows: dict[str, dict | None]  # ref -> the row as the mirror persists it; None: it left the view
    reset: bool = False  # first part of a whole set: the copy drops the rows it holds that are older
    last: bool = True  # derive the engagement once this part is applied
    # ledger rows handed over with an engagement's first bundle, when the router's own ledger had
    # them (a deployment that ran one worker before scaling out): what was written stays known
    ledger: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps({"rows": self.rows, "reset": self.reset, "last": self.last, "ledger": self.ledger},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> BundlePart:
        doc = json.loads(value)
        return cls(key.decode(), doc["rows"], doc["reset"], doc["last"], doc.get("ledger") or {})


class RouteBook:
    """What each engagement's partition was sent, one store entry per (contract, ref):
    ``EngagementRowKey`` -> position of the row shipped (on the worker: the table ``q2c-routes``,
    read on demand)."""

    def __init__(self, store: Store | None = None) -> None:
        self.store: Store = store if store is not None else MemoryStore()

    def sent(self, contract: str) -> PrefixView | None:
        """ref -> position of each row the engagement's copy was sent (read one ref at a time, all
        of them only when its whole view is shipped); None before its first bundle."""
        rows = PrefixView(self.store, EngagementRowKey.prefix(contract))
        return rows if next(iter(rows), None) is not None else None

    def route(self, mirror: SourceMirror, contract: str, whole: bool = False,
              ledger: dict[str, Any] | None = None,
              applied: list[Applied] | None = None) -> tuple[list[BundlePart], dict[str, int | None]]:
        """The bundle parts that bring ``contract``'s copy up to the mirror (none when it is),
        and the book entries to persist once they are sent. ``whole`` ships every row and makes
        the copy drop what it holds besides (the first shipment, a replay); ``ledger`` rows are
        handed over with them. ``applied``: the changes that touched the engagement, when only
        they (and the engagement-wide rows) can have changed what its copy must hold."""
        before = self.sent(contract)
        if not whole and before is not None and applied is not None:
            found = self._changed_rows(mirror, contract, before, applied)
            if found is not None:
                rows, writes = found
                return (self._parts(contract, rows, False, ledger), writes) if rows else ([], {})
        _, refs = recorded_view(mirror, contract)
        now = {ref: mirror.position(ref) for ref in refs}
        if not now and before is None:
            return [], {}  # nothing of it yet (an invoice line naming an unknown engagement)
        whole = whole or before is None
        if whole:
            rows: dict[str, dict | None] = {ref: mirror.persisted(ref) for ref in sorted(now)}
            writes: dict[str, int | None] = {EngagementRowKey(contract, ref).text: pos for ref, pos in now.items()}
            writes.update({EngagementRowKey(contract, ref).text: None for ref in (before or {}).keys() - now.keys()})
        else:
            rows = {ref: mirror.persisted(ref) for ref in sorted(now) if before.get(ref) != now[ref]}
            rows.update({ref: None for ref in sorted(before.keys() - now.keys())})
            writes = {EngagementRowKey(contract, ref).text: now.get(ref) for ref in rows}
        if not rows and not whole:
            return [], {}
        return self._parts(contract, rows, whole, ledger), writes

    @staticmethod
    def _parts(contract: str, rows: dict[str, dict | None], whole: bool, ledger: dict[str, Any] | None) -> list[BundlePart]:
        items = [("rows", ref, doc) for ref, doc in rows.items()] + [("ledger", k, v) for k, v in (ledger or {}).items()]
        chunks = [items[i:i + ROWS_PER_PART] for i in range(0, len(items), ROWS_PER_PART)] or [[]]
        return [BundlePart(contract, {ref: doc for kind, ref, doc in chunk if kind == "rows"}, reset=whole and i == 0,
                           last=i == len(chunks) - 1, ledger={k: v for kind, k, v in chunk if kind == "ledger"})
                for i, chunk in enumerate(chunks)]

    @staticmethod
    def _changed_rows(mirror: SourceMirror, contract: str, before: Mapping[str, int], applied: list[Applied]
                      ) -> tuple[dict[str, dict | None], dict[str, int | None]] | None:
        """The rows to ship when only ``applied`` and the engagement-wide rows can have changed
        (the engagement-wide part of its view is recorded again; the rest is what the changes
        name: the rows themselves, the people of time entries, expenses and assignments, the
        headers of invoice lines). A row shipped that the view does not read (a time entry moved
        to another project) is never read there. None when the engagement may read other rows
        now (a quote or a project changed, or new to it): its whole view is recorded then, and
        the rows that left it are shipped as gone."""
        if any(change.table_id in ("crm.quote", "psa.project") for change in applied):
            return None
        lookups: set[str] = set()
        with mirror.recording(lookups) as refs:
            view = engagement_view(mirror, contract, rows=False)
        if any(ref not in before and ref.startswith(("crm.quote:", "psa.project:")) for ref in refs):
            return None
        wanted = set(refs)
        for change in applied:
            wanted.add(change.ref)
            for model in (change.before, change.after):
                if change.table_id in ("psa.timesheet_entry", "psa.expense_line", "psa.assignment") and model is not None:
                    wanted.add(f"psa.resource:{model.resource_id}")
                elif change.table_id == "finance.ar_invoice_line" and model is not None:
                    wanted.add(f"finance.ar_invoice_hdr:{model.inv_no}")
        # what the deriving side's rules ask for: the router hands it the changes that reach it
        mirror.readers.add(contract, lookups | wanted, view)
        rows: dict[str, dict | None] = {}
        for ref in sorted(wanted):
            if mirror.row(ref) is not None:
                if before.get(ref) != mirror.position(ref):
                    rows[ref] = mirror.persisted(ref)
            elif ref in before:
                rows[ref] = None  # deleted at the source
        return rows, {EngagementRowKey(contract, ref).text: (mirror.position(ref) if doc is not None else None)
                      for ref, doc in rows.items()}

    def apply(self, writes: dict[str, int | None]) -> None:
        """Record entries of parts that were sent (None: the row left the copy)."""
        for key, position in writes.items():
            if position is None:
                self.store.delete(key)
            else:
                self.store.put(key, position)


class EngagementCopies:
    """The rows of each engagement a worker owns, as the router shipped them: one small mirror
    per engagement. Every ref remembers the offset of the part that last set it (``at``), so a
    part delivered again after a crash never takes a row back to an older state.
    Persisted one entry per (contract, ref): ``EngagementRowKey`` -> the row with ``at``."""

    def __init__(self) -> None:
        self.mirrors: dict[str, SourceMirror] = {}
        self.at: dict[str, dict[str, int]] = {}

    def mirror(self, contract: str) -> SourceMirror:
        if contract not in self.mirrors:
            self.mirrors[contract] = SourceMirror()
        return self.mirrors[contract]

    def apply(self, part: BundlePart, offset: int) -> tuple[dict[str, dict], list[Applied]]:
        """Apply one part delivered at ``offset``: the table entries to persist, and the rows it
        changed (what an incremental derivation needs to know)."""
        writes: dict[str, dict] = {}
        at = self.at.setdefault(part.contract, {})
        if part.reset:
            for ref in [r for r, seen in at.items() if seen < offset and r not in part.rows]:
                writes[EngagementRowKey(part.contract, ref).text] = {"row": None, "at": offset}
        writes.update({EngagementRowKey(part.contract, ref).text: {**(doc or {"row": None}), "at": offset}
                       for ref, doc in part.rows.items() if at.get(ref, -1) < offset})
        mirror = self.mirror(part.contract)
        applied = []
        for key, doc in writes.items():
            ref = EngagementRowKey.parse(key).ref
            before = mirror.row(ref)
            self.load(key, doc)
            after = mirror.row(ref)
            if before is not None or after is not None:
                applied.append(Applied(ref, ref.partition(":")[0], before, after, mirror.position(ref) or 0))
        return writes, applied

    def load(self, key: str, doc: dict) -> None:
        """Restore one entry from the table (or record one just applied)."""
        contract, ref = (parsed := EngagementRowKey.parse(key)).contract, parsed.ref
        self.at.setdefault(contract, {})[ref] = doc["at"]
        mirror = self.mirror(contract)
        if doc.get("row") is None:
            mirror.forget(ref)
        else:
            mirror.load(ref, doc)

    def drop(self, contract: str) -> None:
        """Forget an engagement whose partition this worker no longer owns."""
        self.mirrors.pop(contract, None)
        self.at.pop(contract, None)
