"""The seek guard of the worker's Kafka transport, against a model of Faust's drain loop: a record
below a partition's read offset is dropped as read already, and each record taken sets it."""
import asyncio

from streams.agents.kafka_transport import SeekGuard

TP = ("q2c.psa.psa.timesheet_entry", 0)


class Drain:
    """Faust's ``Consumer._drain_messages`` as far as offsets go, with the guard as the transport wires it."""

    def __init__(self, guard: SeekGuard | None):
        self.guard, self.read_offset, self.taken = guard, None, []

    def hand_over(self, offset: int, fetched_at: int) -> None:
        if self.guard is not None:
            if not self.guard.admit(TP, fetched_at):
                return
            back = self.guard.read_offset_for(TP, offset, self.read_offset)
            if back is not None:
                self.read_offset = back
        if self.read_offset is None or offset >= self.read_offset:
            self.taken.append(offset)
            self.read_offset = offset

    def seek(self, committed: int) -> None:  # Faust's perform_seek
        if self.guard is not None:
            self.guard.on_seek([TP])
        self.read_offset = committed


def _kill_then_second_seek(drain: Drain) -> None:
    for offset in range(0, 5):          # read 0-4 before a rebalance (fetch taken at seek 0)
        drain.hand_over(offset, 0)
    drain.seek(2)                        # the group had committed up to 2
    drain.read_offset = 5                # the hand-over of record 5, under way during the seek, ends
    for offset in range(2, 10):          # read again from the committed offset (fetch after the seek)
        drain.hand_over(offset, 1)


def test_without_the_guard_records_read_again_after_a_seek_are_dropped():
    drain = Drain(None)
    _kill_then_second_seek(drain)
    assert 2 not in drain.taken[5:] and drain.taken[5:] == [5, 6, 7, 8, 9]  # 2-4 never taken again: the commits stop


def test_the_guard_sets_the_read_offset_back_to_the_first_record_after_the_seek():
    drain = Drain(SeekGuard())
    _kill_then_second_seek(drain)
    assert drain.taken[5:] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_records_fetched_before_the_seek_do_not_reach_the_stream_after_it():
    drain = Drain(SeekGuard())
    drain.hand_over(0, 0)
    drain.seek(0)
    for offset in (1, 2):               # the rest of the old fetch, handed over after the seek
        drain.hand_over(offset, 0)
    for offset in range(0, 4):
        drain.hand_over(offset, 1)
    assert drain.taken == [0, 0, 1, 2, 3]  # none of the stale records; all read again from 0


def test_without_a_seek_nothing_changes():
    guard, drain = SeekGuard(), Drain(None)
    guarded = Drain(guard)
    for offset in (3, 4, 4, 7):
        drain.hand_over(offset, 0)
        guarded.hand_over(offset, 0)
    assert guarded.taken == drain.taken and guard.handed == {}


def test_a_partition_the_seek_did_not_move_is_left_alone():
    guard = SeekGuard()
    guard.on_seek([("other", 0)])
    assert guard.admit(TP, 0) and guard.read_offset_for(TP, 1, 9) is None


def test_a_gap_faust_would_count_as_processed_is_said_loudly(caplog):
    """The stream topics are neither compacted nor transactional: offsets a partition skipped are
    records never handed to a stream, and Faust commits past them. The transport says so."""
    import asyncio
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.types import TP as FaustTP
    from intervaltree import IntervalTree

    from streams.agents.kafka_transport import Consumer

    consumer = Consumer.__new__(Consumer)  # only what _add_gap reads: no broker
    consumer._read_offset, consumer._committed_offset = defaultdict(lambda: None), defaultdict(lambda: None)
    consumer._gap, consumer._thread = defaultdict(IntervalTree), SimpleNamespace(guard=SeekGuard())
    tp = FaustTP(*TP)
    consumer._read_offset[tp], consumer._committed_offset[tp] = 4, 3
    with caplog.at_level("WARNING"):
        asyncio.run(consumer._add_gap(tp, 5, 8))
    assert "offsets 5-7 skipped before record 8 (read offset 4, committed 3" in caplog.text
    assert sorted((i.begin, i.end) for i in consumer._gap[tp]) == [(5, 9)]  # Faust's own bookkeeping still follows


class SeekingConsumer:
    """aiokafka's consumer as far as a seek goes: committed offsets read with an await (a broker
    round trip), positions placed by ``seek``; a fetch handed over in between sees them as they
    are then."""

    def __init__(self, committed: dict, positions: dict):
        self._committed, self.positions, self.handed = committed, dict(positions), []

    def assignment(self):
        return set(self._committed)

    async def committed(self, tp):
        await asyncio.sleep(0)  # the round trip: the consumer thread's other tasks run here
        return self._committed[tp]

    async def beginning_offsets(self, tps):
        await asyncio.sleep(0)
        return {tp: 0 for tp in tps}

    def seek(self, tp, offset):
        self.positions[tp] = offset


def test_a_fetch_handed_over_during_a_seek_is_counted_on_the_side_of_the_seek_it_saw():
    """Whatever the guard counts when a fetch is handed over (before or after the seek), its
    partitions' positions are all before or all after it: so a fetch it drops as taken before the
    seek is one whose records the seek will have read again."""
    from aiokafka import TopicPartition as AioTP

    from streams.agents.kafka_transport import seek_to_committed

    parts = [AioTP("psa.psa.timesheet_entry", 0), AioTP("psa.transaction", 0), AioTP("crm.crm.quote", 0)]
    consumer = SeekingConsumer({parts[0]: 2776, parts[1]: 50, parts[2]: None}, {p: 9999 for p in parts})
    guard = SeekGuard()

    async def fetches(done: asyncio.Event):
        while not done.is_set():
            consumer.handed.append((guard.seeks, dict(consumer.positions)))
            await asyncio.sleep(0)

    async def scenario():
        done = asyncio.Event()
        fetching = asyncio.create_task(fetches(done))
        await asyncio.sleep(0)
        committed = await seek_to_committed(consumer, [], on_seek=guard.on_seek)
        await asyncio.sleep(0)
        done.set()
        await fetching
        return committed

    assert asyncio.run(scenario()) == {parts[0]: 2776, parts[1]: 50, parts[2]: None}
    assert consumer.positions == {parts[0]: 2776, parts[1]: 50, parts[2]: 0}
    before = [positions for seeks, positions in consumer.handed if seeks == 0]
    after = [positions for seeks, positions in consumer.handed if seeks == 1]
    assert before and after
    assert all(p == {part: 9999 for part in parts} for p in before)
    assert all(p == consumer.positions for p in after)
