"""The fetch watch decides alone (no Faust): a stall is events left, nothing read for a while,
and no rebalance under way."""
from streams.agents.fetch_watch import FetchWatch

TP = ("psa.transaction", 0)


def test_events_left_and_nothing_read_for_a_minute_is_a_stall():
    """Positions are the next offsets to read; ends the broker's."""
    watch = FetchWatch(stall_after_s=60)
    assert not watch.check(0, {TP: 10}, {TP: 50}, busy=False)
    assert not watch.check(59, {TP: 10}, {TP: 50}, busy=False)
    assert watch.check(60, {TP: 10}, {TP: 50}, busy=False)
    assert not watch.check(61, {TP: 10}, {TP: 50}, busy=False)  # reported once per period
    assert watch.check(120, {TP: 10}, {TP: 50}, busy=False)


def test_a_stall_lasts_until_a_position_moves():
    watch = FetchWatch(stall_after_s=60)
    watch.check(0, {TP: 10}, {TP: 50}, busy=False)
    assert not watch.stalled
    watch.check(60, {TP: 10}, {TP: 50}, busy=False)
    assert watch.stalled
    watch.check(70, {TP: 10}, {TP: 50}, busy=False)
    assert watch.stalled  # reported once, but still stalled
    watch.check(80, {TP: 12}, {TP: 50}, busy=False)
    assert not watch.stalled


def test_reading_nothing_with_nothing_left_is_no_stall():
    watch = FetchWatch(stall_after_s=60)
    watch.check(0, {TP: 50}, {TP: 50}, busy=False)
    assert not watch.check(600, {TP: 50}, {TP: 50}, busy=False)


def test_progress_or_a_rebalance_restarts_the_clock():
    watch = FetchWatch(stall_after_s=60)
    watch.check(0, {TP: 10}, {TP: 50}, busy=False)
    assert not watch.check(50, {TP: 11}, {TP: 50}, busy=False)
    assert not watch.check(100, {TP: 11}, {TP: 50}, busy=False)
    assert not watch.check(140, {TP: 11}, {TP: 50}, busy=True)
    assert not watch.check(190, {TP: 11}, {TP: 50}, busy=False)
    assert watch.check(200, {TP: 11}, {TP: 50}, busy=False)


def test_a_partition_never_read_is_not_judged():
    watch = FetchWatch(stall_after_s=60)
    watch.check(0, {TP: None}, {TP: 50}, busy=False)
    assert not watch.check(100, {TP: None}, {TP: 50}, busy=False)


def test_a_batch_holding_the_pipeline_for_two_minutes_is_reported_once():
    watch = FetchWatch()
    assert not watch.long_batch(0, processing=True)
    assert not watch.long_batch(119, processing=True)
    assert watch.long_batch(120, processing=True)
    assert not watch.long_batch(600, processing=True)
    assert not watch.long_batch(601, processing=False)
    assert not watch.long_batch(700, processing=True)  # a new batch starts its own clock


def test_the_evidence_shows_the_whole_await_chain_of_a_waiting_task():
    import asyncio

    from streams.agents.fetch_watch import await_chain

    async def sink_write(gate):
        await gate.wait()

    async def handle_batch(gate):
        await sink_write(gate)

    async def scenario():
        gate = asyncio.Event()
        task = asyncio.create_task(handle_batch(gate))
        await asyncio.sleep(0)
        chain = await_chain(task)
        gate.set()
        await task
        return chain

    chain = asyncio.run(scenario())
    assert [line.split()[-1] for line in chain[:3]] == ["handle_batch", "sink_write", "wait"]
    assert "Future" in chain[-1]
