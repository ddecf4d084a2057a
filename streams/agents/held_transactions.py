"""The transaction buffer's durable shell: records that wait for their source transaction are kept
in the Faust table ``q2c-open-transactions`` until applied.

Faust commits a batch's offsets once the agent has taken it, so a record held in memory only would
be lost in a crash. What is still open at the end of a batch is written to the table (most
transactions complete within their batch and cost only their id, in one entry per batch); it is
restored on start, and leaves the table once its changes were applied (the sinks succeeded).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from streams.agents import metrics
from streams.agents.table_entry import put_or_remove
from streams.capture.envelope import Provenance, RowChange, TransactionEnd, decode
from streams.capture.tables import all_mappings
from streams.capture.transactions import TransactionBuffer
from streams.state.keys import ClosedKey, HeldChangeKey, TransactionEndKey

log = logging.getLogger(__name__)

Where = tuple[str, int, int]  # topic, partition, offset


def where_of(change: RowChange) -> Where | None:
    """Where a change was read (None for one made elsewhere, in tests)."""
    p = change.provenance
    return (p.topic, p.partition, p.offset) if p is not None else None


@dataclass(frozen=True)
class HeldRecord:
    """A source record held with its open transaction: enough to decode it again after a restart
    and to dead-letter it with its origin, like a Faust event (``.message``, ``.key``, ``.value``)."""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def message(self) -> HeldRecord:
        return self

    @property
    def table_key(self) -> str:
        return HeldChangeKey(self.topic, self.partition, self.offset).text

    def persisted(self) -> dict:
        text = lambda b: b.decode("utf-8") if b is not None else None  # noqa: E731 - Debezium JSON is UTF-8
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": text(self.key), "value": text(self.value)}

    @classmethod
    def restored(cls, doc: dict) -> HeldRecord:
        raw = lambda t: t.encode("utf-8") if t is not None else None  # noqa: E731
        return cls(doc["topic"], doc["partition"], doc["offset"], raw(doc["key"]), raw(doc["value"]))


class HeldTransactions:
    def __init__(self, table: MutableMapping, wait_s: float,
                 put: Callable[[MutableMapping, str, Any], None] = put_or_remove):
        """``put``: how an entry is set or (None) removed; the worker's goes through its batch's
        changelog producer (``streams.agents.changelog``)."""
        self.table, self.put = table, put
        self.buffer = TransactionBuffer(all_mappings(), overdue_after=wait_s)
        self.records: dict[Where, HeldRecord] = {}  # persisted records of open transactions
        self.ends: set[tuple[str, str]] = set()     # their persisted END markers
        # ids of applied transactions, persisted one entry per batch: (sequence, how many ids)
        self.closed_chunks: list[tuple[int, int]] = []

    def restore(self, now: float) -> list[RowChange]:
        """Rebuild the buffer from the table (on start); returns what is complete already."""
        released: list[RowChange] = []
        entries = [(key, doc) for key, doc in self.table.items() if doc is not None]
        for key, doc in sorted(e for e in entries if e[0].startswith(ClosedKey.PREFIX)):
            for source, tx in doc["ids"]:  # first what was applied: a held record of it is applied at once
                self.buffer.remember_closed((source, tx))
            self.closed_chunks.append((ClosedKey.parse(key).seq, len(doc["ids"])))
        for key, doc in entries:
            if key.startswith(ClosedKey.PREFIX):
                continue
            if key.startswith(TransactionEndKey.PREFIX):
                item = TransactionEnd(doc["source"], doc["tx"], doc["events_by_table"])
                self.ends.add((item.source, item.tx))
            else:
                record = HeldRecord.restored(doc)
                item = decode(record.topic, record.key, record.value, Provenance(record.topic, record.partition, record.offset))
                self.records[(record.topic, record.partition, record.offset)] = record
            released.extend(self.buffer.offer(item, now))
        return released

    def offer(self, batch: Iterable[tuple[Where, Any, RowChange | TransactionEnd]], now: float) -> list[RowChange]:
        """Pass a batch's decoded records (where, event, item) through the buffer; persist what
        stays open; return the changes to apply now, overdue transactions included."""
        batch = list(batch)
        released: list[RowChange] = []
        for _, _, item in batch:
            released.extend(self.buffer.offer(item, now))
        for where, event, item in batch:
            if isinstance(item, RowChange) and where not in self.records and self.buffer.holding(item):
                record = HeldRecord(*where, event.key, event.value)
                self.records[where] = record
                self.put(self.table, record.table_key, record.persisted())
            elif isinstance(item, TransactionEnd) and (item.source, item.tx) in self.buffer.open:
                self.ends.add((item.source, item.tx))
                self.put(self.table, TransactionEndKey(item.source, item.tx).text, {
                    "source": item.source, "tx": item.tx, "events_by_table": item.events_by_table})
        overdue = self.buffer.release_overdue(now)
        # the transactions applied are remembered across restarts, so that a record of one that is
        # delivered again (offsets not yet committed at a crash, a copy injected later) passes
        # through instead of waiting for an END that was read long ago
        self._persist_closed()
        if overdue:
            metrics.INCOMPLETE_TRANSACTIONS.inc(len({(c.source, c.transaction) for c in overdue}))
            log.warning("applying %d changes of source transactions still incomplete %.0fs after their first change",
                        len(overdue), self.buffer.overdue_after)
        metrics.OPEN_TRANSACTIONS.set(len(self.buffer.open))
        return released + overdue

    def _persist_closed(self) -> None:
        """The transactions this batch applied, as one entry; the oldest entries go once more than
        the buffer remembers are kept."""
        closed = self.buffer.drain_closed()
        if not closed:
            return
        seq = max(time.time_ns(), self.closed_chunks[-1][0] + 1 if self.closed_chunks else 0)
        self.put(self.table, ClosedKey(seq).text, {"ids": [list(k) for k in closed]})
        self.closed_chunks.append((seq, len(closed)))
        while sum(n for _, n in self.closed_chunks[1:]) >= self.buffer.remember:
            old, _ = self.closed_chunks.pop(0)
            self.put(self.table, ClosedKey(old).text, None)

    def any_overdue(self, now: float) -> bool:
        return self.buffer.any_overdue(now)

    def release_all(self) -> list[RowChange]:
        """Every change still held, as it is: at the end of a replay's rebuild, the transactions
        still incomplete are those the first run applied after waiting for them, and the sweep
        that follows must see their rows."""
        released = self.buffer.release_overdue(float("inf"))
        if released:
            metrics.INCOMPLETE_TRANSACTIONS.inc(len({(c.source, c.transaction) for c in released}))
            log.warning("applying %d changes of source transactions still incomplete at the end of the rebuild", len(released))
        self._persist_closed()
        return released

    def record(self, change: RowChange) -> HeldRecord | None:
        """The held record a change was read from (to dead-letter it with its origin)."""
        return self.records.get(where_of(change))

    def forget(self, applied: Iterable[RowChange]) -> None:
        """Applied changes (the sinks succeeded) and closed markers leave the table."""
        for change in applied:
            record = self.records.pop(where_of(change), None)
            if record is not None:
                self.put(self.table, record.table_key, None)
        for source, tx in [k for k in self.ends if k not in self.buffer.open]:
            self.ends.discard((source, tx))
            self.put(self.table, TransactionEndKey(source, tx).text, None)
        metrics.OPEN_TRANSACTIONS.set(len(self.buffer.open))
