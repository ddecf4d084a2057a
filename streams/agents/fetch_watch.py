"""A watch on Faust's fetching: a worker with source events left to read that reads none.

The stall seen in stops 6 and 7 had a cause, now mended in ``kafka_transport.py`` (records read
ahead during a rebalance were dropped and never read again in partitions without a committed
offset). This watch stays as a net: every few seconds the worker checks for partitions with events
left and no event read for ``STALL_AFTER_S``, outside a rebalance and a batch; it logs Faust's
fetch state, where every task waits (its whole await chain, on the worker's loop and on Faust's
consumer thread) and aiokafka's state per partition, counts ``q2c_fetch_stalls_total`` and sets
fetching going again (flow control, paused or buffered partitions, a seek to the committed
offsets). A batch that holds the pipeline for two minutes is reported the same way, without action
(a sink outage does that on purpose). While a stall lasts, ``/health`` says ``stalled`` (503). The
decisions are ``FetchWatch``'s, without Faust.
"""
from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Hashable, Mapping
from typing import Any

from streams.agents import library_internals as internals
from streams.agents import metrics

log = logging.getLogger(__name__)

STALL_AFTER_S = 30.0
READING = "reading"  # the part of the worker's health this watch sets
LONG_BATCH_S = 120.0


class FetchWatch:
    def __init__(self, stall_after_s: float = STALL_AFTER_S):
        self.stall_after_s = stall_after_s
        self.offsets: dict[Hashable, int | None] = {}
        self.progress_at: float | None = None
        self.batch_since: float | None = None
        self.stalled = False  # since the last stall found, no position moved

    def long_batch(self, now: float, processing: bool, after_s: float = LONG_BATCH_S) -> bool:
        """Whether one batch has held the pipeline for ``after_s`` (said once per batch): a sink
        outage does that on purpose, a stuck await too."""
        if not processing:
            self.batch_since = None
            return False
        if self.batch_since is None:
            self.batch_since = now
            return False
        if now - self.batch_since >= after_s:
            self.batch_since = float("inf")  # once
            return True
        return False

    def check(self, now: float, positions: Mapping[Hashable, int | None], ends: Mapping[Hashable, int],
              busy: bool) -> bool:
        """Whether fetching stalled: some partition has events at or after its position (the
        next offset to read), and no position moved for ``stall_after_s`` (``busy``: a
        rebalance or recovery, which pauses fetching on purpose)."""
        offsets = dict(positions)
        if busy or offsets != self.offsets or self.progress_at is None:
            self.offsets, self.progress_at, self.stalled = offsets, now, False
            return False
        behind = [tp for tp, end in ends.items() if offsets.get(tp) is not None and end > offsets[tp]]
        if behind and now - self.progress_at >= self.stall_after_s:
            self.progress_at, self.stalled = now, True  # one report per stall period
            return True
        return False


def await_chain(task: asyncio.Task) -> list[str]:
    """Where a task waits, outermost first: every coroutine of its ``await`` chain (a task's own
    stack shows only its top frame), down to the future it waits on."""
    chain, awaited = [], task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            chain.append(repr(awaited)[:200])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = (getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
                   or getattr(awaited, "ag_await", None))
    return chain


def evidence(app: Any) -> str:
    """Every task of the worker's loop and of Faust's consumer thread with where it waits, and
    aiokafka's fetch state per partition: for the next investigation of a stall."""
    out = io.StringIO()
    loops = [("worker", asyncio.get_running_loop())]
    if (thread_loop := internals.consumer_thread_loop(app.consumer)) is not None:
        loops.append(("consumer thread", thread_loop))
    for name, loop in loops:
        for task in list(asyncio.all_tasks(loop)):
            print(f"[{name}] {task.get_name()}:", file=out)
            for line in await_chain(task):
                print(f"    {line}", file=out)
    try:
        for line in internals.fetcher_state(app.consumer):
            print(line, file=out)
    except Exception as exc:  # noqa: BLE001 - evidence is best effort
        print(f"aiokafka state unavailable: {exc!r}", file=out)
    return out.getvalue()


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
    for tp in tps:  # a partition never read nor committed starts at its beginning (earliest)
        positions[tp] = internals.read_position(consumer, tp)
        if tp in ends:
            metrics.CONSUMER_LAG.labels(app.conf.id, tp.topic, str(tp.partition)).set(max(0, ends[tp] - positions[tp]))
    if fetch_watch.long_batch(now, processing):
        log.warning("one batch has held the pipeline for %.0f s (a sink down, or a stuck wait). %s",
                    LONG_BATCH_S, evidence(app))
    busy = processing or bool(getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False))
    found = fetch_watch.check(now, positions, ends, busy)
    if fetch_watch.stalled:
        metrics.HEALTH.set("stalled", f"no event read for {fetch_watch.stall_after_s:.0f} s with events left", part=READING)
    else:
        metrics.HEALTH.set("running", part=READING)
    if not found:
        return
    buffered, active, paused = internals.partitions_held(consumer)
    metrics.FETCH_STALLS.inc()
    log.warning(
        "no event read for %.0fs with events left (%s); Faust: flow_active=%s, flow_control=%s, "
        "active=%s, buffered=%s, paused=%s, producer buffer=%s; resuming fetching. %s",
        fetch_watch.stall_after_s,
        ", ".join(f"{tp.topic}:{tp.partition} {positions[tp]}/{ends[tp]}" for tp in tps
                  if positions[tp] is not None and ends.get(tp, 0) > positions[tp]),
        consumer.flow_active, app.flow_control.is_active(), sorted(map(str, active)),
        sorted(map(str, buffered)), sorted(map(str, paused)), app.producer.buffer.size,
        evidence(app))
    for tp in buffered:
        consumer.on_buffer_drop(tp)
    app.flow_control.resume()
    consumer.resume_flow()
    consumer.resume_partitions(set(tps))
    await consumer.perform_seek()  # fetch again from the committed offsets (changes read twice count once)
