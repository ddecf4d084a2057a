"""What the rules last made of one engagement's many rows, kept so that a change derives only the
rows it touches.

A batch that changes a few time entries of an engagement with a hundred thousand must not
re-derive the other rows: under the same terms (``rules.engagement.Terms``) their events and
costs are what they were. The book keeps, per engagement, each row's candidate event and cost id,
and the running totals (the T&M budget, the expense cap) in their order, with the total before
each event: a change re-runs a total from its first changed position and stops where the total
is back to what it was. ``derive`` stays the specification: the processor derives in full when
there is no book or the terms changed, and tests/state/test_engagement_book.py checks that the
incremental path writes what full derivation writes, for any sequence and batching of changes.

No I/O. Books live in memory, rebuilt by a full derivation when missing (a restart, a cold
engagement pushed out of the cache, a batch that failed).
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from streams.rules.engagement import Candidate, Head, Rows

ZERO = Decimal("0.00")


class RunningTotal:
    """Candidates in running-total order, each with its final hold and the total of the ready
    events before it (``rules.engagement.running_holds``, kept up to date one change at a time)."""

    def __init__(self, limit: Decimal | None, reason: str, candidates: Iterable[Candidate]):
        self.limit, self.reason = limit, reason
        candidates = list(candidates)
        self.order: list[tuple] = sorted(c.order for c in candidates)
        self.at: dict[tuple, Candidate] = {c.order: c for c in candidates}
        self.order_of: dict[str, tuple] = {c.event_id: c.order for c in candidates}
        self.holds: dict[str, str | None] = {}
        self.before: dict[tuple, Decimal] = {}
        self._walk(0, None)

    def candidate(self, event_id: str) -> Candidate | None:
        order = self.order_of.get(event_id)
        return self.at[order] if order is not None else None

    def _uses(self, c: Candidate) -> Decimal:
        return c.amount if self.holds[c.event_id] is None and c.taxed else ZERO

    def _walk(self, start: int, last_changed: tuple | None) -> set[str]:
        """Re-run the total from position ``start``; past ``last_changed`` (None: to the end),
        stop as soon as the total before a candidate is what it was. The event ids whose hold
        changed."""
        flipped: set[str] = set()
        if start > 0:
            prior = self.at[self.order[start - 1]]
            running = self.before[prior.order] + self._uses(prior)
        else:
            running = ZERO
        for i in range(start, len(self.order)):
            order = self.order[i]
            c = self.at[order]
            if last_changed is not None and order > last_changed and self.before.get(order) == running:
                break
            hold = c.hold
            if hold is None and self.limit is not None and running + c.amount > self.limit:
                hold = self.reason
            if self.holds.get(c.event_id, "unset") != hold:
                flipped.add(c.event_id)
                self.holds[c.event_id] = hold
            self.before[order] = running
            if hold is None and c.taxed:
                running += c.amount
        return flipped

    def change(self, removed: Iterable[Candidate], added: Iterable[Candidate]) -> set[str]:
        """Take ``removed`` out and put ``added`` in; the event ids whose hold changed (the added
        ones among them)."""
        touched: list[tuple] = []
        for c in removed:
            i = bisect_left(self.order, c.order)
            if i < len(self.order) and self.order[i] == c.order:
                del self.order[i]
            self.at.pop(c.order, None)
            self.before.pop(c.order, None)
            self.holds.pop(c.event_id, None)
            self.order_of.pop(c.event_id, None)
            touched.append(c.order)
        for c in added:
            insort(self.order, c.order)
            self.at[c.order] = c
            self.order_of[c.event_id] = c.order
            touched.append(c.order)
        if not touched:
            return set()
        return self._walk(bisect_left(self.order, min(touched)), max(touched))


@dataclass
class EngagementBook:
    """One engagement's rows as last derived: the head, each row's candidate event and cost id,
    the running totals, and which person each approved time entry is for."""
    head: Head
    time: dict[int, Candidate]
    expenses: dict[int, Candidate]
    cost_of: dict[int, str]  # time entry id → its cost event id
    budget: RunningTotal
    cap: RunningTotal
    resource_of: dict[int, int] = field(default_factory=dict)
    entries_of_resource: dict[int, set[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, head: Head, rows: Rows) -> EngagementBook:
        book = cls(
            head=head, time=dict(rows.time), expenses=dict(rows.expenses),
            cost_of={entry_id: cost.cost_event_id for entry_id, cost in rows.costs.items()},
            budget=RunningTotal(head.terms.budget, "over_budget", rows.time.values()),
            cap=RunningTotal(head.terms.cap, "over_expense_cap", rows.expenses.values()),
        )
        for entry_id, resource_id in rows.resource_of.items():
            book.place(entry_id, resource_id)
        return book

    def place(self, entry_id: int, resource_id: int | None) -> None:
        """Index an approved time entry under its person (None: not approved, depends on no one)."""
        old = self.resource_of.pop(entry_id, None)
        if old is not None:
            self.entries_of_resource.get(old, set()).discard(entry_id)
        if resource_id is not None:
            self.resource_of[entry_id] = resource_id
            self.entries_of_resource.setdefault(resource_id, set()).add(entry_id)

    def candidate(self, event_id: str) -> Candidate | None:
        return self.budget.candidate(event_id) or self.cap.candidate(event_id)

    def size(self) -> int:
        """The rows it holds (time entries and expenses)."""
        return len(self.time) + len(self.expenses)

    def hold(self, event_id: str) -> str | None:
        return self.budget.holds[event_id] if event_id in self.budget.holds else self.cap.holds[event_id]


class Books:
    """The books of the engagements derived lately, the least recently used dropped past ``size``
    books or ``rows`` time entries and expenses in all (the one used last is always kept, however
    large). ``rows`` is twice the longest programme a firm runs (100,000 entries): a book that
    fills the budget alone would be dropped whenever another engagement is derived, and the
    programme derived in full again on its next change."""

    def __init__(self, size: int = 2000, rows: int = 200_000):
        self.size, self.rows = size, rows
        self._books: OrderedDict[str, EngagementBook] = OrderedDict()

    def get(self, contract: str) -> EngagementBook | None:
        book = self._books.get(contract)
        if book is not None:
            self._books.move_to_end(contract)
        return book

    def put(self, contract: str, book: EngagementBook) -> None:
        self._books[contract] = book
        self._books.move_to_end(contract)
        while len(self._books) > self.size:
            self._books.popitem(last=False)
        held = sum(b.size() for b in self._books.values())
        while held > self.rows and len(self._books) > 1:
            held -= self._books.popitem(last=False)[1].size()

    def drop(self, contract: str) -> None:
        self._books.pop(contract, None)

    def clear(self) -> None:
        self._books.clear()
