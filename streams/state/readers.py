"""Which engagements read what: the join graph's backward side, recorded from its forward side.

An engagement's rules read the mirror through ``engagement_view`` (and, on the incremental path,
single rows). While an engagement is derived, the mirror records what each read asked for
(``SourceMirror.recording``): every ref asked for, every index value and table scanned.
``Readers`` keeps them in the mirror's store, one entry per (lookup, engagement), so the
engagements a changed row can affect are the readers of its ref, of its table and of each index
value it has before and after the change (``SourceMirror.touched``). What an engagement reads and
what reaches it cannot drift apart: there is one description of the joins, the code that reads.

A derivation in full replaces the engagement's lookups (what it no longer reads stops reaching
it: a project moved to another contract reaches only that one); the incremental path adds to
them what a derivation in full would ask for besides (``read_in_full``). Single time entries and
expenses, and the invoice lines naming one event, lie within ranges the engagement reads whole
(its project's entries and expenses, the lines naming its events): those ranges are its lookups
instead, so the record grows with the engagements and the people in them, not with their rows.
A lookup within those ranges is never kept, by either path, and is not asked for either: a new
time entry's own ref would cost a scan of the store that finds nothing, once per change.
The only rule written by hand is the root: a quote names its own contract (an engagement that
was never derived has read nothing). No I/O.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from streams.rules.engagement import EngagementView
from streams.state.keys import IndexKey, ReaderKey, ReadsKey
from streams.state.store import Store

EVENT_LINES = IndexKey.prefix("finance.ar_invoice_line", "by_event", "")[:-1]  # lines naming one event


def read_in_full(view: EngagementView) -> set[str]:
    """What a derivation in full asks for that the incremental path reads one row at a time, or
    not at all, from the view of its engagement's head (``engagement_view(rows=False)``): its
    project's time entries and expenses, the invoice lines naming its events, the people of its
    assignments."""
    found = {IndexKey.prefix("finance.ar_invoice_line", "by_src_contract", view.contract_number)}
    if view.project is not None:
        found |= {IndexKey.prefix(t, "by_project", view.project.id) for t in ("psa.timesheet_entry", "psa.expense_line")}
    return found | {f"psa.resource:{a.resource_id}" for a in view.assignments}


def _within_ranges(lookup: str) -> bool:
    return lookup.startswith(("psa.timesheet_entry:", "psa.expense_line:", EVENT_LINES))


class Readers:
    """Engagements by what they read, as entries of the mirror's store; the readers of recent
    lookups are remembered (at most ``size`` lookups) until an engagement's lookups change."""

    def __init__(self, store: Store, size: int = 10_000):
        self.store = store
        self.size = size
        self._found: OrderedDict[str, frozenset[str]] = OrderedDict()

    def of(self, lookups: Iterable[str]) -> set[str]:
        """The engagements that read under any of ``lookups``."""
        found: set[str] = set()
        for lookup in lookups:
            if not _within_ranges(lookup):
                found |= self._readers(lookup)
        return found

    def replace(self, contract: str, lookups: set[str]) -> None:
        """What a derivation in full of ``contract`` asked for: its lookups from now on."""
        self._note(contract, lookups, replace=True)

    def add(self, contract: str, lookups: set[str], head: EngagementView) -> None:
        """What an incremental derivation from the view of the engagement's head ``head`` asked
        for, besides the engagement's lookups so far."""
        self._note(contract, lookups | read_in_full(head), replace=False)

    def lookups(self, contract: str) -> set[str]:
        return set(self.store.get(ReadsKey(contract).text) or ())

    def _note(self, contract: str, lookups: set[str], replace: bool) -> None:
        kept = {lookup for lookup in lookups if not _within_ranges(lookup)}
        held = self.lookups(contract)
        now = kept if replace else held | kept
        if now == held:
            return
        for lookup in now - held:
            self.store.put(ReaderKey(lookup, contract).text, True)
            self._found.pop(lookup, None)
        for lookup in held - now:
            self.store.delete(ReaderKey(lookup, contract).text)
            self._found.pop(lookup, None)
        self.store.put(ReadsKey(contract).text, sorted(now))

    def _readers(self, lookup: str) -> frozenset[str]:
        found = self._found.get(lookup)
        if found is None:
            prefix = ReaderKey.prefix(lookup)
            found = frozenset(ReaderKey.contract_in(key, prefix) for key, _ in self.store.scan(prefix))
            self._found[lookup] = found
            if len(self._found) > self.size:
                self._found.popitem(last=False)
        else:
            self._found.move_to_end(lookup)
        return found
