"""A watch on Faust's fetching: a worker with source events left to read that reads none.

Seen once (a CI run, while catching up on a large backlog): the worker sat idle with events left on
its partitions, and neither Faust nor the sync logged anything. Faust stops fetching a partition
while the stream's buffer is under pressure and starts again once the buffer drains (callbacks of
mode's ``FlowControlQueue``); if that resumption is lost, nothing else restarts it. Every few
seconds the worker checks for partitions with events left and no event read for
``STALL_AFTER_S``, outside a rebalance: it logs Faust's fetch state (evidence for the next
investigation), counts ``q2c_fetch_stalls_total`` and re-enables fetching of the partitions
Faust still marks as buffered. The decision is ``FetchWatch.check``, without Faust.
"""
from __future__ import annotations

import logging
from typing import Any, Hashable, Mapping

from streams.agents import metrics

log = logging.getLogger(__name__)

STALL_AFTER_S = 60.0


class FetchWatch:
    def __init__(self, stall_after_s: float = STALL_AFTER_S):
        self.stall_after_s = stall_after_s
        self.offsets: dict[Hashable, int | None] = {}
        self.progress_at: float | None = None

    def check(self, now: float, read_offsets: Mapping[Hashable, int | None], highwaters: Mapping[Hashable, int],
              busy: bool) -> bool:
        """Whether fetching stalled: some partition has events after the last one read, and no
        partition read anything for ``stall_after_s`` (``busy``: a rebalance or recovery, which
        pauses fetching on purpose)."""
        offsets = dict(read_offsets)
        if busy or offsets != self.offsets or self.progress_at is None:
            self.offsets, self.progress_at = offsets, now
            return False
        behind = [tp for tp, high in highwaters.items() if offsets.get(tp) is not None and high - 1 > offsets[tp]]
        if behind and now - self.progress_at >= self.stall_after_s:
            self.progress_at = now  # one report per stall period
            return True
        return False


def watch(app: Any, fetch_watch: FetchWatch, now: float) -> None:
    """Run ``fetch_watch`` on the Faust app's consumer; on a stall, log and re-enable fetching."""
    consumer = app.consumer
    tps = [tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog")]
    read = {tp: consumer._read_offset.get(tp) for tp in tps}
    highwaters = {tp: consumer.highwater(tp) for tp in tps}
    busy = bool(getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False))
    if not fetch_watch.check(now, read, highwaters, busy):
        return
    buffered = set(consumer._buffered_partitions)
    metrics.FETCH_STALLS.inc()
    log.warning(
        "no event read for %.0fs with events left (%s); Faust: flow_active=%s, flow_control=%s, "
        "active=%s, buffered=%s, paused=%s, producer buffer=%s; re-enabling the buffered partitions",
        fetch_watch.stall_after_s,
        ", ".join(f"{tp.topic}:{tp.partition} {read[tp]}/{highwaters[tp]}" for tp in tps if read[tp] is not None and highwaters[tp] - 1 > read[tp]),
        consumer.flow_active, app.flow_control.is_active(), sorted(map(str, consumer._active_partitions or ())),
        sorted(map(str, buffered)), sorted(map(str, consumer._paused_partitions)), app.producer.buffer.size)
    for tp in buffered:
        consumer.on_buffer_drop(tp)
