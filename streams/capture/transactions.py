"""Source transactions: apply a transaction's changes together, never half of it.

Debezium writes each change of a source transaction to its table's topic, and BEGIN/END markers
(``provide.transaction.metadata``) to ``<database>.transaction``; END says how many events each
table got. Topics are read in no particular interleaving, so without this a quote approved in the
same transaction as its lines could be derived before the lines arrive: a contract worth 0 would
reach the ERP for a moment. ``TransactionBuffer`` holds a transaction's changes until END and all
the events it counts have arrived (in any order), then releases them together. Snapshot reads are
not part of a transaction and pass through; a tombstone (no transaction either) waits with the
delete it follows when that delete is held.

A transaction whose END or events do not all arrive within ``overdue_after`` seconds of its first
change is released as it is (``release_overdue``): the rows are right once the rest arrives, as
before; holding them for ever would be worse. Pure: no I/O; the clock is passed in.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.capture.envelope import RowChange, TransactionEnd


@dataclass
class OpenTransaction:
    opened: float
    first_change: float | None = None                            # when its first change arrived
    changes: dict[Any, RowChange] = field(default_factory=dict)  # by change_id
    expected: int | None = None                                  # from END, when it has come
    # tombstones that followed a delete held here: (the delete's position, tombstone)
    tombstones: list[tuple[int, RowChange]] = field(default_factory=list)

    def overdue(self, now: float, wait: float) -> bool:
        """The wait counts from the first change: an END read far ahead of its changes (the
        marker topic is small and is read ahead while a backlog is drained) is not a reason to
        give up on them. A marker whose changes never come is forgotten after ten waits."""
        if self.first_change is not None:
            return now - self.first_change >= wait
        return now - self.opened >= 10 * wait


def row_of(change: RowChange) -> Any:
    return change.table_id, tuple(sorted(change.key.items()))


def change_id(change: RowChange) -> Any:
    """Identity of a change in its source: a change delivered twice (at-least-once; Debezium
    re-sends a transaction after its own restart, at new offsets) counts once."""
    return (*row_of(change), change.position)


class TransactionBuffer:
    def __init__(self, captured_tables: Iterable[str], overdue_after: float = 60.0, remember: int = 100_000):
        self.captured = set(captured_tables)
        self.overdue_after = overdue_after
        self.open: dict[tuple[str, str], OpenTransaction] = {}
        # transactions already released: a change or END delivered again after a restart passes through
        self.closed: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.remember = remember
        self.closed_log: list[tuple[str, str]] = []
        self.row_holder: dict[Any, tuple[tuple[str, str], int]] = {}  # row → (open transaction, last position)

    def offer(self, item: RowChange | TransactionEnd, now: float) -> list[RowChange]:
        """Take a change or an END marker; return the changes that may be applied now."""
        if isinstance(item, TransactionEnd):
            key = (item.source, item.tx)
            if key in self.closed:
                return []
            expected = sum(n for table, n in item.events_by_table.items() if table in self.captured)
            held = self.open.setdefault(key, OpenTransaction(opened=now))
            held.expected = expected
            return self._release_if_complete(key)
        if item.transaction is None:  # a snapshot read, a tombstone: not part of a transaction
            holder = self.row_holder.get(row_of(item)) if item.op == "t" else None
            if holder is not None and holder[0] in self.open:  # follows its delete, held: wait with it
                self.open[holder[0]].tombstones.append((holder[1], item))
                return []
            return [item]
        key = (item.source, item.transaction)
        if key in self.closed:
            return [item]
        held = self.open.setdefault(key, OpenTransaction(opened=now))
        if held.first_change is None:
            held.first_change = now
        held.changes.setdefault(change_id(item), item)  # a copy delivered again is not held twice
        known = self.row_holder.get(row_of(item))
        if known is None or known[0] != key or known[1] < item.position:
            self.row_holder[row_of(item)] = (key, item.position)
        return self._release_if_complete(key)

    def any_overdue(self, now: float) -> bool:
        return any(t.overdue(now, self.overdue_after) for t in self.open.values())

    def release_overdue(self, now: float) -> list[RowChange]:
        """Give up waiting for transactions whose first change came ``overdue_after`` ago."""
        released: list[RowChange] = []
        for key in [k for k, t in self.open.items() if t.overdue(now, self.overdue_after)]:
            released.extend(self._close(key))
        return released

    def holding(self, change: RowChange) -> bool:
        """Whether this very record (not only an equal copy of it) waits in an open transaction."""
        if change.transaction is None:
            holder = self.row_holder.get(row_of(change))
            held = self.open.get(holder[0]) if holder is not None else None
            return held is not None and any(t is change for _, t in held.tombstones)
        held = self.open.get((change.source, change.transaction))
        return held is not None and held.changes.get(change_id(change)) is change

    def _release_if_complete(self, key: tuple[str, str]) -> list[RowChange]:
        held = self.open[key]
        if held.expected is None or len(held.changes) < held.expected:
            return []
        return self._close(key)

    def remember_closed(self, key: tuple[str, str]) -> None:
        """A transaction applied before (restored after a restart): its records pass through."""
        self.closed[key] = None

    def drain_closed(self) -> list[tuple[str, str]]:
        """The transactions closed since the last call (for persisting them)."""
        closed, self.closed_log = self.closed_log, []
        return closed

    def _close(self, key: tuple[str, str]) -> list[RowChange]:
        held = self.open.pop(key)
        self.closed[key] = None
        self.closed_log.append(key)
        while len(self.closed) > self.remember:
            self.closed.popitem(last=False)
        for change in held.changes.values():
            if self.row_holder.get(row_of(change), (None,))[0] == key:
                del self.row_holder[row_of(change)]
        ordered = [(c.position, 0, c) for c in held.changes.values()] + [(p, 1, t) for p, t in held.tombstones]
        return [c for _, _, c in sorted(ordered, key=lambda o: o[:2])]  # a tombstone right after its delete
