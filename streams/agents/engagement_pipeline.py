"""The engagement agent's batch (scaled out): bundle parts from ``q2c.changes.by-engagement`` →
copies of the engagements' rows → rules (``EngagementStage``) → canonical topics → ERP and PSA
sinks → ledger.

A batch spans the partitions this worker owns, so its table entries are written to the partition
of their engagement explicitly (Faust would pick the partition of the "current event"); the
partition is the one the router produced the bundle to. After a rebalance the state is rebuilt
from the tables, keeping only the engagements of the partitions this worker owns.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.agents.commit import Commit, commit
from streams.agents.outputs import persist_ledger, publish, write_sinks
from streams.canonical.wire import CanonicalWire
from streams.config import Settings
from streams.state.engagement_stage import EngagementStage
from streams.state.keys import contract_of
from streams.state.routing import BundlePart, engagement_partition

log = logging.getLogger(__name__)


class EngagementPipeline(BatchHandler):
    def __init__(self, settings: Settings, rows_table: MutableMapping, ledger_table: MutableMapping,
                 owned_partitions: Callable[[], set[int]]):
        super().__init__(settings)
        self.rows_table = rows_table
        self.ledger_table = ledger_table
        self.owned_partitions = owned_partitions
        self.wire = CanonicalWire.from_settings(settings)
        self.lock = asyncio.Lock()
        self.stage = EngagementStage()
        self.loaded = False

    def partition_of(self, contract: str) -> int:
        return engagement_partition(contract, self.s.engagement_partitions)

    def ready(self) -> None:
        """Rebuild the copies and the ledger of the engagements of the partitions owned now."""
        started = time.monotonic()
        owned = self.owned_partitions()
        self.stage = EngagementStage()
        for key, doc in self.rows_table.items():
            if doc is not None and self.partition_of(contract_of(key)) in owned:
                self.stage.copies.load(key, doc)
        for key, doc in self.ledger_table.items():
            if doc is not None and self.partition_of(contract_of(key)) in owned:
                self.stage.ledger.load(key, doc)
        self.loaded = True
        metrics.ENGAGEMENT_PARTITIONS.set(len(owned))
        log.info("engagements rebuilt from their tables: %d engagements of %d partitions, in %.2fs",
                 len(self.stage.copies.mirrors), len(owned), time.monotonic() - started)

    def rebalanced(self) -> None:
        """After a rebalance: rebuild from the tables before the next batch."""
        self.loaded = False
        metrics.ENGAGEMENT_PARTITIONS.set(len(self.owned_partitions()))

    async def process(self, events: list[Any]) -> None:
        async with self.lock:
            if not self.loaded:
                self.ready()
            try:
                await self._process(events)
            except Exception:
                self.loaded = False  # the state in memory ran ahead of the tables: rebuild before the retry
                raise

    async def _process(self, events: list[Any]) -> None:
        parts, letters = [], []
        for event in events:
            try:
                parts.append((event.message.offset, BundlePart.decode(event.key, event.value)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                letters.append((event, "undecodable", f"not a bundle part: {exc}", None))
        if letters:
            await self._dead_letter_until_delivered(letters)
        result = self.stage.process(parts)

        def write_tables() -> None:
            for key, doc in result.mirror_writes.items():
                self._put(self.rows_table, key, doc)
            persist_ledger(self.ledger_table, result.ledger_writes, put=self._put)

        await commit(Commit(publish=lambda: publish(self, self.wire, result), sinks=lambda: write_sinks(self, result),
                            tables=write_tables, memory=lambda: self.stage.commit(result)), self.flush)
        metrics.ENGAGEMENTS_DERIVED.inc(len({p.contract for _, p in parts if p.last}))

    def _put(self, table: Any, key: str, value: Any) -> None:
        """Set (or, None, remove) one entry in its engagement's partition of a Faust table."""
        self.changelog.put(table, key, value, self.partition_of(contract_of(key)))
