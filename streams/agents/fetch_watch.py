"""A watch on Faust's fetching: a worker with source events left to read that reads none.

Seen three times in a day of test runs (after a restart or a replay, while catching up): the worker
sat idle with events left on its partitions, END markers of source transactions starved first, and
neither Faust nor the sync logged anything. Faust stops fetching a partition
while the stream's buffer is under pressure and starts again once the buffer drains (callbacks of
mode's ``FlowControlQueue``); if that resumption is lost, nothing else restarts it. Every few
seconds the worker checks for partitions with events left and no event read for
``STALL_AFTER_S``, outside a rebalance and a batch: it logs Faust's fetch state (evidence for the next
investigation, with every task's stack), counts ``q2c_fetch_stalls_total`` and sets fetching
going again: partitions Faust still marks as buffered or paused, its flow control, and a seek
to the committed offsets. The decision is ``FetchWatch.check``, without Faust.
"""
from __future__ import annotations

import asyncio
import io
import logging
from typing import Any, Hashable, Mapping

from streams.agents import metrics

log = logging.getLogger(__name__)

STALL_AFTER_S = 30.0


class FetchWatch:
    def __init__(self, stall_after_s: float = STALL_AFTER_S):
        self.stall_after_s = stall_after_s
        self.offsets: dict[Hashable, int | None] = {}
        self.progress_at: float | None = None

    def check(self, now: float, positions: Mapping[Hashable, int | None], ends: Mapping[Hashable, int],
              busy: bool) -> bool:
        """Whether fetching stalled: some partition has events at or after its position (the
        next offset to read), and no position moved for ``stall_after_s`` (``busy``: a
        rebalance or recovery, which pauses fetching on purpose)."""
        offsets = dict(positions)
        if busy or offsets != self.offsets or self.progress_at is None:
            self.offsets, self.progress_at = offsets, now
            return False
        behind = [tp for tp, end in ends.items() if offsets.get(tp) is not None and end > offsets[tp]]
        if behind and now - self.progress_at >= self.stall_after_s:
            self.progress_at = now  # one report per stall period
            return True
        return False

async def watch(app: Any, fetch_watch: FetchWatch, now: float, processing: bool) -> None:
    """Run ``fetch_watch`` on the Faust app's consumer (positions from what it read, ends from the
    broker: a fetcher that stopped has stale high-water marks); on a stall, log the evidence and
    set fetching going again. ``processing``: an agent is inside a batch (a sink may be down), so
    reading nothing is expected."""
    consumer = app.consumer
    tps = [tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog")]
    if not tps:
        return
    ends = dict(await consumer.highwaters(*tps))
    positions = {}
    for tp in tps:
        read = consumer._read_offset.get(tp)
        positions[tp] = read + 1 if read is not None else consumer._committed_offset.get(tp)
    busy = processing or bool(getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False))
    if not fetch_watch.check(now, positions, ends, busy):
        return
    buffered = set(consumer._buffered_partitions)
    metrics.FETCH_STALLS.inc()
    tasks = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=8, file=tasks)
    log.warning(
        "no event read for %.0fs with events left (%s); Faust: flow_active=%s, flow_control=%s, "
        "active=%s, buffered=%s, paused=%s, producer buffer=%s; resuming fetching. Tasks:\n%s",
        fetch_watch.stall_after_s,
        ", ".join(f"{tp.topic}:{tp.partition} {positions[tp]}/{ends[tp]}" for tp in tps
                  if positions[tp] is not None and ends.get(tp, 0) > positions[tp]),
        consumer.flow_active, app.flow_control.is_active(), sorted(map(str, consumer._active_partitions or ())),
        sorted(map(str, buffered)), sorted(map(str, consumer._paused_partitions)), app.producer.buffer.size,
        tasks.getvalue())
    for tp in buffered:
        consumer.on_buffer_drop(tp)
    app.flow_control.resume()
    consumer.resume_flow()
    consumer.resume_partitions(set(tps))
    await consumer.perform_seek()  # fetch again from the committed offsets (changes read twice count once)
