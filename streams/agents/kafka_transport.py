"""Faust's Kafka transport with fixes to the seek after a rebalance: a partition the group never
committed is read again from its beginning, not from wherever the fetcher had got to; a record
fetched before the seek never reaches a stream after it, nor sets the read offset the seek put
back (``SeekGuard``); and with the race Faust's drain loop runs for every record only where a
record has to wait (``EagerHandOver``).

Faust reads ahead while it restores tables after a rebalance, drops what it read for partitions
it is not yet streaming, and then "seeks the stream partitions to their committed offsets" to read
it again. aiokafka's ``seek_to_committed`` skips every partition without a committed offset (or
with offset 0: aio-libs/aiokafka#1003, open), so such a partition kept the position past the
dropped records: they were never handed to an agent. A fresh consumer group (a scaled-out worker's
first start, a new engagement partition, a replay that reset the group) sat idle with the events
unread, or, once a later event came, skipped the dropped ones: found as "the worker that stops
reading" (docs/design.md). Here such partitions go back to the start the group's
``auto_offset_reset`` names; a changelog partition is left to Faust's recovery, which places it
itself.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from streams.agents import library_internals as internals

log = logging.getLogger(__name__)


async def seek_to_committed(consumer: AIOKafkaConsumer, changelog_topics: Iterable[str], reset: str = "earliest",
                            on_seek: Callable[[Iterable[TopicPartition]], None] | None = None
                            ) -> Mapping[TopicPartition, int | None]:
    """Put every assigned stream partition at its committed offset, and one never committed at
    its beginning (``reset`` "earliest") or end ("latest"); the committed offsets, as aiokafka's.

    Every offset is read first; then ``on_seek`` is told of the stream partitions and they are
    all placed, with no await in between. aiokafka's own ``seek_to_committed`` awaits each
    partition's committed offset between its seeks, so a fetch handed over in one of those awaits
    was taken after its partition had been placed but before the seek was counted: the guard took
    its records for ones read again, and nothing read them again (seen in a scaled-out run:
    1,512 records dropped that way, and Faust then counted offsets 2,777-3,817 of
    psa.psa.timesheet_entry as processed)."""
    changelogs = set(changelog_topics)
    committed: dict[TopicPartition, int | None] = {}
    for tp in sorted(consumer.assignment()):
        committed[tp] = await consumer.committed(tp)
    streams = {tp: offset for tp, offset in committed.items() if tp.topic not in changelogs}
    never = [tp for tp, offset in streams.items() if offset is None]
    starts: Mapping[TopicPartition, int] = {}
    if never:
        starts = await (consumer.end_offsets if reset == "latest" else consumer.beginning_offsets)(never)
    ahead = {tp: position for tp in never if (position := _fetch_position(consumer, tp))}
    # from here on, no await: the seek is counted and done at once
    if on_seek is not None:
        on_seek(streams)
    for tp, offset in committed.items():
        if tp in streams:
            consumer.seek(tp, offset if offset is not None else starts[tp])  # 0 too: aio-libs/aiokafka#1003
        elif offset:  # a changelog partition, as aiokafka would: Faust's recovery places it
            consumer.seek(tp, offset)
    if ahead:  # the case aiokafka leaves behind: records read ahead and dropped by Faust
        log.info("read again from the %s (nothing committed yet): %s", "end" if reset == "latest" else "beginning",
                 ", ".join(f"{tp.topic}:{tp.partition} (fetched up to {position})" for tp, position in ahead.items()))
    return committed


def _fetch_position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """Where the fetcher is in ``tp`` (None when it has no position), without waiting for one."""
    return internals.fetch_position(consumer, tp)


class FetchedRecords(dict):
    """A fetch's records, with the count of seeks done before it was taken from aiokafka."""

    def __init__(self, records: Mapping, seeks: int):
        super().__init__(records)
        self.seeks = seeks


class SeekGuard:
    """Which records a stream may still take after a seek of its partitions, and when Faust's read
    offset of a partition must go back down.

    Faust drops a record below a partition's read offset as read already. Two things can put the
    read offset above records nobody processed: a record fetched before the seek reaching a stream
    after it (``admit`` says no), and Faust's drain loop setting the offset of a record it was
    handing over while the seek ran, once that hand-over ends (the seek's read offset overwritten).
    After a seek a partition's records come from its new position in increasing order, so a
    record of a fetch taken after the seek that lies above the last one handed over but below the
    read offset shows the second: the read offset is set back to it (``read_offset_for``), and at
    worst a record is processed twice (the sinks are idempotent)."""

    def __init__(self) -> None:
        self.seeks = 0                        # seeks of the stream partitions so far
        self.sought: frozenset = frozenset()  # the stream partitions the last one put back
        self.handed: dict[Any, int] = {}      # partition → last offset handed over since that seek

    def on_seek(self, partitions: Iterable[Any]) -> None:
        self.sought = frozenset(partitions)
        self.handed = {}
        self.seeks += 1

    def admit(self, tp: Any, fetched_at: int | None) -> bool:
        """False for a record of a partition the last seek put back, fetched before that seek."""
        return fetched_at is None or fetched_at == self.seeks or tp not in self.sought

    def read_offset_for(self, tp: Any, offset: int, read_offset: int | None) -> int | None:
        """The read offset Faust must hold for this admitted record to be taken; None: as it is."""
        if tp not in self.sought:
            return None
        last = self.handed.get(tp)
        self.handed[tp] = offset
        if read_offset is not None and offset < read_offset and (last is None or offset > last):
            return offset
        return None


# How long the broker holds a fetch that finds no new records. aiokafka keeps one fetch in flight
# per broker and leaves out of it every partition whose last records are still being handed over;
# Faust asks for 1,500 ms. So a fetch that went out while the busy partitions were still being
# handed over holds only the quiet ones and waits there its full time, while the busy partitions'
# next records wait behind it. A source transaction waits until its rows and its END marker (on
# another topic) are both read, so at 500 approvals a second the latency settled at 1.5-2 s once
# a batch had fallen behind, with the END markers read ~1,000 transactions after their rows.
FETCH_MAX_WAIT_MS = 100


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    guard: SeekGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = SeekGuard()

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        internals.set_fetch_max_wait(consumer, FETCH_MAX_WAIT_MS)  # read by its fetcher, created at start
        return consumer

    async def seek_to_committed(self) -> Mapping[TopicPartition, int | None]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TopicPartition, int | None]:
        changelogs = set(self.app.tables.changelog_topics)
        return await seek_to_committed(self._ensure_consumer(), changelogs, self.app.conf.consumer_auto_offset_reset,
                                       on_seek=self.guard.on_seek)

    async def _fetch_records(self, consumer: AIOKafkaConsumer, active_partitions, timeout=None, max_records=None):
        records = await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        return FetchedRecords(records, self.guard.seeks)  # counted when aiokafka handed them over: no await between


class Resumed:
    """A coroutine started by hand and now waiting on ``pending``, as an awaitable that goes on
    from there: the delegation ``yield from`` does (PEP 380), so that a task can take it over."""

    def __init__(self, coro: Coroutine, pending: Any):
        self.coro, self.pending = coro, pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation and errors go on into the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


class EagerHandOver:
    """A mode ``Service`` whose ``wait_first(callback(message), self.suspend_flow.wait())``, the
    race Faust's drain loop runs for every record it hands to the streams, runs the callback
    at once and races it only when it has to wait.

    Faust races each record's hand-over against a rebalance suspending the flow: four futures and
    an ``asyncio.wait`` a record. py-spy (``--gil``) on the worker at 500 approvals a second, three
    records each (BEGIN, the row, END), put 12.6 % of the worker's Python time in that race. A
    hand-over waits only when a stream's queue is full. Here it is run until it first waits;
    finished by then, the race is not needed; else it goes on as Faust's, from where it stopped,
    and a suspension still cancels it (Python 3.12's eager tasks do the same). With it, mode's
    share of the worker's Python time at that rate fell from 28.5 % to 6.3 %.
    """

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if timeout is None and len(coros) == 2 and self._is_hand_over(*coros):
            handing, suspended = coros
            try:
                pending = handing.send(None)
            except StopIteration as done:
                suspended.close()  # never started
                return WaitResults([handing], [done.value], False)
            except BaseException:
                suspended.close()
                raise
            coros = (Resumed(handing, pending), suspended)
        return await super().wait_first(*coros, timeout=timeout)  # type: ignore[misc]

    def _is_hand_over(self, handing: Any, suspended: Any) -> bool:
        """The drain loop's race: a callback not yet started, and the flow's suspension."""
        if not (asyncio.iscoroutine(handing) and asyncio.iscoroutine(suspended)):
            return False
        unstarted = inspect.getcoroutinestate(handing) == inspect.CORO_CREATED
        flow = self.suspend_flow  # type: ignore[attr-defined]
        return (unstarted and suspended.cr_frame is not None and suspended.cr_frame.f_locals.get("self") is flow
                and not flow.is_set() and not self.should_stop)  # type: ignore[attr-defined]


class Consumer(EagerHandOver, faust_aiokafka.Consumer):
    """Records fetched before a seek never reach a stream after it, and the read offset a seek set
    is not overwritten by a hand-over that was under way (``SeekGuard``).

    Faust resumes the stream partitions before it seeks them (``Recovery._resume_streams``) and
    hands over a fetch's records one by one while the streams take them, so records fetched from
    a partition's old position can reach a stream after the seek moved it. Faust takes such a
    record's offset as the partition's read offset and drops every record below it as read
    already: the records from the seek's position up to it were never processed and, with nothing
    committed before, Faust committed past them (seen with ``q2c replay``: the first record handed
    over after the seek to 0 was at offset 1,047; the rebuilt mirror lacked the rows of 0-1,046 and
    the sweep reversed their events). After a ``kill -9`` the commits of a partition stopped
    instead, 9,907 records short, with the ERP complete: records read again after a second seek
    were dropped below a read offset set by the hand-over of one fetched before it.
    """

    _fetched_seeks: int | None = None

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float):
        records, active = await super()._wait_next_records(timeout)
        self._fetched_seeks = getattr(records, "seeks", None)
        return records, active

    async def getmany(self, timeout: float):
        guard, dropped = self._thread.guard, 0
        below: dict[Any, list[int]] = {}  # partition → [records Faust will drop, the first, its read offset]
        async for tp, message in super().getmany(timeout):
            if not guard.admit(tp, self._fetched_seeks):
                dropped += 1  # fetched before the seek that moved its partition: read again from there
                continue
            back = guard.read_offset_for(tp, message.offset, self._read_offset.get(tp))
            if back is not None:
                log.warning("%s:%d: read offset %s is above record %d, the next after the seek: set back so that "
                            "the records between are taken", tp.topic, tp.partition, self._read_offset.get(tp), back)
                self._read_offset[tp] = back
            read = self._read_offset.get(tp)
            if read is not None and message.offset < read:  # Faust drops it as read already: never expected
                below.setdefault(tp, [0, message.offset, read])[0] += 1
            yield tp, message
        if dropped:
            log.info("%d records fetched before a seek not handed to the streams; they are read again", dropped)
        for tp, (count, first, read) in below.items():
            log.warning("%s:%d: %d records from %d are below the read offset %d and dropped by Faust as read already "
                        "(seeks %d, last handed since the last seek %s)", tp.topic, tp.partition, count, first, read,
                        guard.seeks, guard.handed.get(tp))

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Faust takes offsets a partition skipped (compaction, transaction markers) as acked, so
        it commits past them. The sync's stream topics have neither: a gap means records that
        were never handed to a stream. Said loudly, so that it is seen where it happens."""
        log.warning("%s:%d: offsets %d-%d skipped before record %d (read offset %s, committed %s, seeks %d): "
                    "Faust counts them as processed", tp.topic, tp.partition, offset_from, offset_to - 1, offset_to,
                    self._read_offset.get(tp), self._committed_offset.get(tp), self._thread.guard.seeks)
        await super()._add_gap(tp, offset_from, offset_to)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """``faust.App`` reading Kafka through the transport above."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
