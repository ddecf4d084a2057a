"""The capture agent's batch: decode → hold each source transaction until it is complete →
mirror and rules (``Processor``) → canonical topics and dead letters → ERP, PSA and CRM sinks →
ledger. The mirror and the ledger keep their rows in their tables (``q2c-mirror``,
``q2c-ledger``), read on demand. Scaled out (``routes_table`` given), each touched engagement is
routed as bundle parts to ``q2c.changes.by-engagement`` instead, for the engagement agent of the
worker owning its partition; receivables and account financials are still derived here."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.agents.commit import Commit, commit
from streams.agents.held_transactions import HeldTransactions, where_of
from streams.agents.outputs import publish, write_sinks
from streams.agents.table_rows import table_rows
from streams.canonical.wire import CanonicalWire
from streams.capture.envelope import Provenance, RowChange, TransactionEnd, UndecodableEvent, decode
from streams.config import Settings
from streams.kafka_io import committed_offsets
from streams.state.ledger import Ledger, LedgerCodec
from streams.state.mirror import MirrorCodec, SourceMirror
from streams.state.processor import BatchResult, Processor
from streams.state.routing import RouteBook, engagement_partition
from streams.state.store import PlainCodec
from streams.topics import BY_ENGAGEMENT, REPLAY_HEADER

log = logging.getLogger(__name__)


def observe_written(changes: list[RowChange], result: BatchResult) -> None:
    """The batch's outputs are committed in every sink: each source transaction's latency to the
    sinks it wrote to, and the newest commit applied per source database."""
    commits: dict[str, float] = {}
    newest: dict[str, float] = {}
    for change in changes:
        if change.committed_at is not None:
            stamp = change.committed_at.timestamp()
            commits[change.transaction or f"{change.source}:{change.position}"] = stamp
            if stamp > newest.get(change.source, 0.0):
                newest[change.source] = stamp
    for source, stamp in newest.items():
        metrics.SOURCE_LAST_COMMIT.labels(source).set(stamp)
    sinks = [sink for sink, written in (("erp", len(result.erp)), ("psa", len(result.provisions)),
                                        ("crm", len(result.financials)), ("kafka", len(result.canonical))) if written]
    metrics.observe_latency(sinks, commits.values(), time.time())


class CapturePipeline(BatchHandler):
    def __init__(self, settings: Settings, mirror_table: MutableMapping, ledger_table: MutableMapping,
                 open_transactions_table: MutableMapping, routes_table: MutableMapping | None = None):
        super().__init__(settings)
        self.mirror_table = mirror_table
        self.ledger_table = ledger_table
        self.open_transactions_table = open_transactions_table
        self.routes_table = routes_table
        self.wire = CanonicalWire.from_settings(settings)
        self.lock = asyncio.Lock()
        self.reload_pending, self.reads_sources = False, True
        self.unload()
        self.replay_target = settings.replay_target
        self.rebuild_until: dict[tuple[str, int], int] = {}
        self.sweep_pending = False

    def unload(self) -> None:
        """Drop the in-memory state (rebuilt from the tables by ``ready``)."""
        self.mirror = SourceMirror()
        self.processor = Processor(self.mirror, routes=RouteBook() if self.routes_table is not None else None)
        self.transactions = HeldTransactions(self.open_transactions_table, self.s.transaction_wait_s, self.changelog.put)
        self.ready_to_apply: list[RowChange] = []  # released while restoring
        self.loaded = False

    def ready(self) -> None:
        """After Faust restored the tables: open the mirror and the ledger over them (rows are
        read on demand), and restore the open transactions."""
        started = time.monotonic()
        cache = self.s.state_cache_rows
        self.mirror = SourceMirror(store=table_rows(self.mirror_table, MirrorCodec(), cache, self.changelog))
        ledger = Ledger(table_rows(self.ledger_table, LedgerCodec(), cache, self.changelog))
        routes = RouteBook(table_rows(self.routes_table, PlainCodec(), cache, self.changelog)) if self.routes_table is not None else None
        self.processor = Processor(self.mirror, ledger, routes=routes)
        indexed = self.mirror.ensure_indexes()  # a table written before its indexes were kept in it
        recorded = self.processor.ensure_readers()  # or before the engagements' reads were
        self.ready_to_apply = self.transactions.restore(time.monotonic())
        self.loaded = True
        if self.replay_target.exists():  # `q2c replay`: rebuild quietly up to these offsets first
            ends = {(t["topic"], t["partition"]): t["end"] for t in json.loads(self.replay_target.read_text()) if t["end"] > 0}
            # a restart or rebalance during the rebuild resumes from the committed offsets: what
            # was committed up to its end is rebuilt already
            read = committed_offsets(self.s, list(ends)) if ends else {}
            self.rebuild_until = {tp: end for tp, end in ends.items() if read.get(tp, 0) < end}
            log.info("replay: rebuilding the mirror up to %d partitions' end offsets before deriving", len(self.rebuild_until))
            if not ends:
                self.replay_target.unlink()
            elif not self.rebuild_until:  # rebuilt before this start: derive everything once now
                self.sweep_pending = True
                self.ready_to_apply.extend(self.transactions.release_all())
        log.info("state opened: mirror and ledger on their tables (%d rows indexed, the reads of %d engagements recorded),"
                 " %d open source transactions, in %.2fs",
                 indexed, recorded, len(self.transactions.buffer.open), time.monotonic() - started)

    def rebalanced(self, reads_sources: bool) -> None:
        """After a rebalance, once Faust restored the tables: the state is rebuilt from them (if
        this worker now reads the source topics; else dropped) before the next batch or timer
        tick. Nothing is done here: Faust resumes the streams right after this signal."""
        self.reload_pending, self.reads_sources = True, reads_sources

    def _settle(self) -> None:
        """Rebuild or drop the state as the last rebalance left it (call with the lock held)."""
        if self.reload_pending:
            self.unload()
            self.reload_pending = False
        if not self.loaded and self.reads_sources:
            self.ready()

    async def handle(self, events: list[Any]) -> None:
        if self.reload_pending or not self.loaded:
            async with self.lock:
                self._settle()
        await super().handle(events)

    async def release_overdue(self) -> None:
        """Called by a timer: apply transactions that waited too long (and finish a replay's
        sweep), even without new events."""
        if self.reload_pending:
            async with self.lock:
                self._settle()
        if self.loaded and (self.ready_to_apply or self.sweep_pending or self.transactions.any_overdue(time.monotonic())):
            await self.handle([])

    async def process(self, events: list[Any]) -> None:
        async with self.lock:  # the agent and the overdue timer share the mirror
            await self._process(events)

    async def _process(self, events: list[Any]) -> None:
        records = {(e.message.topic, e.message.partition, e.message.offset): e for e in events}
        changes, letters = self._take(events)
        if letters:
            await self._dead_letter_until_delivered(letters)
        if self.rebuild_until:
            for event in events:
                key = (event.message.topic, event.message.partition)
                if key in self.rebuild_until and event.message.offset + 1 >= self.rebuild_until[key]:
                    del self.rebuild_until[key]
            if not self.rebuild_until:  # caught up with where the replay started: derive everything once
                log.info("replay: mirror rebuilt; deriving every engagement, invoice and account")
                self.sweep_pending = True
                changes.extend(self.transactions.release_all())
            derive = False
        else:
            derive = True
        try:
            await self._apply(changes, records, derive, sweep=self.sweep_pending)
        except Exception:  # noqa: BLE001 - find the change that fails; the others go through
            log.exception("a batch of %d source changes failed; applying them one by one", len(changes))
            await self.one_by_one(changes, lambda change: self._apply([change], records, derive, sweep=False),
                                  lambda change, exc: (self._record_of(change, records), "processing_error",
                                                       f"{type(exc).__name__}: {exc}", change.position))
        self.transactions.forget(changes)
        stamps = [c.committed_at for c in changes if c.committed_at]
        if stamps:
            metrics.LAG.set((datetime.now(UTC) - max(stamps)).total_seconds())

    def _take(self, events: list[Any]) -> tuple[list[RowChange], list]:
        """Decode the batch and pass it through the held transactions: (changes to apply now,
        dead letters of undecodable records)."""
        letters = []
        changes, self.ready_to_apply = self.ready_to_apply, []
        decoded: list[tuple[tuple[str, int, int], Any, RowChange | TransactionEnd]] = []
        captured: Counter[tuple[str, str]] = Counter()
        for event in events:
            msg = event.message
            where = (msg.topic, msg.partition, msg.offset)
            try:
                item = decode(msg.topic, event.key, event.value, Provenance(*where))
            except UndecodableEvent as exc:
                letters.append((event, "undecodable", str(exc), None))
                continue
            if item is None:
                continue
            if isinstance(item, RowChange):
                captured[item.table_id, item.op] += 1
                if REPLAY_HEADER in (getattr(event, "headers", None) or {}):
                    changes.append(item)  # a dead letter replayed: its transaction was applied long ago
                    continue
            decoded.append((where, event, item))
        for (table_id, op), count in captured.items():
            metrics.CHANGES.labels(table_id, op).inc(count)
        changes.extend(self.transactions.offer(decoded, time.monotonic()))
        return changes, letters

    def _record_of(self, change: RowChange, records: dict) -> Any:
        return records.get(where_of(change)) or self.transactions.record(change)

    async def _apply(self, changes: list[RowChange], records: dict, derive: bool, sweep: bool) -> None:
        result = self.processor.process(changes, derive_outputs=derive)
        if sweep:
            self.processor.sweep(result)
        letters = [(self._record_of(r.change, records), r.reason, r.error, r.change.position) for r in result.rejected]

        def publish_all() -> None:
            publish(self, self.wire, result)
            producer = self.kafka_producer()
            for part in result.bundles:
                producer.produce(BY_ENGAGEMENT, key=part.contract.encode(), value=part.encode(),
                                 partition=engagement_partition(part.contract, self.s.engagement_partitions))
            self.dead_letter(letters, flush=False)

        await commit(Commit(publish=publish_all, sinks=lambda: write_sinks(self, result),
                            tables=lambda: self.processor.persist(result), memory=self.processor.settle), self.flush)
        if not sweep:  # a replay's sweep writes what old commits imply: no latency of today's
            observe_written(changes, result)
        else:
            self.sweep_pending = False
            self.replay_target.unlink(missing_ok=True)
