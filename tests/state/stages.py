"""Scaling out without I/O: a router shipping bundles and a stage deriving from its copies, joined
by an in-memory ``q2c.changes.by-engagement``: the builders of the routing and engagement-book tests."""
from datetime import date

from streams.state.engagement_stage import EngagementStage
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.state.routing import BundlePart, RouteBook, engagement_partition
from streams.state.store import CachedStore, PlainCodec
from streams.testing import JsonTable

TODAY = lambda: date(2026, 6, 1)  # noqa: E731


class TwoStages:
    """A router and the deriving side, joined by an in-memory ``q2c.changes.by-engagement``."""

    def __init__(self, partitions: int = 3):
        # what was routed read on demand through a cache of five entries, as the worker reads q2c-routes
        self.router = Processor(SourceMirror(), today=TODAY, routes=RouteBook(CachedStore(JsonTable(), PlainCodec(), size=5)))
        self.stage = EngagementStage(today=TODAY)
        self.topic: dict[int, list[BundlePart]] = {p: [] for p in range(partitions)}
        self.partitions = partitions

    def process(self, changes) -> list[tuple[int, BundlePart]]:
        result = self.router.process(changes)
        sent = []
        for part in result.bundles:
            log = self.topic[engagement_partition(part.contract, self.partitions)]
            log.append(part)
            sent.append((len(log) - 1, part))
        self.router.commit(result)
        self.derive(sent)
        return sent

    def derive(self, parts) -> dict:
        result = self.stage.process(parts)
        self.stage.commit(result)
        return result.ledger_writes

    def snapshot(self) -> dict:
        return {**self.router.ledger.snapshot(), **self.stage.ledger.snapshot()}


def two_stage_outcome(order, batch_size):
    stages = TwoStages()
    for i in range(0, len(order), batch_size):
        stages.process(order[i:i + batch_size])
    return stages.snapshot()
