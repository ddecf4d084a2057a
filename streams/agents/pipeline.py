"""The capture agent's batch: decode → hold each source transaction until it is complete →
mirror and rules (``Processor``) → canonical topics and dead letters → ERP, PSA and CRM sinks →
ledger."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, MutableMapping

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.agents.held_transactions import HeldTransactions, where_of
from streams.agents.topics import REPLAY_HEADER
from streams.canonical import avro
from streams.canonical.wire import CanonicalWire
from streams.capture.envelope import Provenance, RowChange, TransactionEnd, UndecodableEvent, decode
from streams.config import Settings
from streams.sinks import crm as crm_sink
from streams.sinks import erp as erp_sink
from streams.sinks import psa as psa_sink
from streams.state.ledger import Ledger
from streams.state.mirror import SourceMirror
from streams.state.processor import BatchResult, Processor

log = logging.getLogger(__name__)


class CapturePipeline(BatchHandler):
    def __init__(self, settings: Settings, mirror_table: MutableMapping, ledger_table: MutableMapping,
                 open_transactions_table: MutableMapping):
        super().__init__(settings)
        self.mirror_table = mirror_table
        self.mirror = SourceMirror()
        self.ledger_table = ledger_table
        self.processor = Processor(self.mirror)
        self.wire = CanonicalWire.from_settings(settings)
        self.transactions = HeldTransactions(open_transactions_table, settings.transaction_wait_s)
        self.ready_to_apply: list[RowChange] = []  # released while restoring
        self.lock = asyncio.Lock()
        self.loaded = False
        self.replay_target = settings.run_dir / "replay-target.json"
        self.rebuild_until: dict[tuple[str, int], int] = {}
        self.sweep_pending = False

    def ready(self) -> None:
        """After Faust restored the tables: rebuild the mirror and the open transactions."""
        started = time.monotonic()
        count = 0
        for ref, doc in self.mirror_table.items():
            if doc is not None:
                self.mirror.load(ref, doc)
                count += 1
        for key, doc in self.ledger_table.items():
            self.processor.ledger.load(key, doc)
        self.ready_to_apply = self.transactions.restore(time.monotonic())
        self.loaded = True
        if self.replay_target.exists():  # `q2c replay`: rebuild quietly up to these offsets first
            target = json.loads(self.replay_target.read_text())
            self.rebuild_until = {(t["topic"], t["partition"]): t["end"] for t in target if t["end"] > 0}
            log.info("replay: rebuilding the mirror up to %d partitions' end offsets before deriving", len(self.rebuild_until))
            if not self.rebuild_until:
                self.replay_target.unlink()
        metrics.HEALTH.set("running")
        log.info("mirror rebuilt from its table: %d rows, %d open source transactions, in %.2fs",
                 count, len(self.transactions.buffer.open), time.monotonic() - started)

    async def handle(self, events: list[Any]) -> None:
        if not self.loaded:
            self.ready()
        await super().handle(events)

    async def release_overdue(self) -> None:
        """Called by a timer: apply transactions that waited too long, even without new events."""
        if self.loaded and (self.ready_to_apply or self.transactions.any_overdue(time.monotonic())):
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
            derive = False
        else:
            derive = True
        try:
            await self._apply(changes, records, derive, sweep=self.sweep_pending)
        except Exception:  # noqa: BLE001 - find the change that fails; the others go through
            log.exception("a batch of %d source changes failed; applying them one by one", len(changes))
            for change in changes:
                try:
                    await self._apply([change], records, derive, sweep=False)
                except Exception as exc:  # noqa: BLE001
                    log.exception("a source change failed on its own")
                    await self._dead_letter_until_delivered(
                        [(self._record_of(change, records), "processing_error", f"{type(exc).__name__}: {exc}", change.position)])
        self.transactions.forget(changes)
        stamps = [c.committed_at for c in changes if c.committed_at]
        if stamps:
            metrics.LAG.set((datetime.now(timezone.utc) - max(stamps)).total_seconds())

    def _take(self, events: list[Any]) -> tuple[list[RowChange], list]:
        """Decode the batch and pass it through the held transactions: (changes to apply now,
        dead letters of undecodable records)."""
        letters = []
        changes, self.ready_to_apply = self.ready_to_apply, []
        decoded: list[tuple[tuple[str, int, int], Any, RowChange | TransactionEnd]] = []
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
                metrics.CHANGES.labels(item.table_id, item.op).inc()
                if REPLAY_HEADER in (getattr(event, "headers", None) or {}):
                    changes.append(item)  # a dead letter replayed: its transaction was applied long ago
                    continue
            decoded.append((where, event, item))
        changes.extend(self.transactions.offer(decoded, time.monotonic()))
        return changes, letters

    def _record_of(self, change: RowChange, records: dict) -> Any:
        return records.get(where_of(change)) or self.transactions.record(change)

    async def _apply(self, changes: list[RowChange], records: dict, derive: bool, sweep: bool) -> None:
        result = self.processor.process(changes, derive_outputs=derive)
        if sweep:
            self.processor.sweep(result)
        letters = [(self._record_of(r.change, records), r.reason, r.error, r.change.position) for r in result.rejected]
        for ref, doc in result.mirror_writes.items():
            self.mirror_table[ref] = doc
        await asyncio.to_thread(self._publish, result, letters)
        await asyncio.to_thread(self._sink, result)
        for key, row in result.ledger_writes.items():
            if row is None:
                if key in self.ledger_table:
                    del self.ledger_table[key]
            else:
                self.ledger_table[key] = Ledger.persisted(row)
        self.processor.commit(result)
        if sweep:
            self.sweep_pending = False
            self.replay_target.unlink(missing_ok=True)

    def _publish(self, result: BatchResult, letters) -> None:
        producer = self.kafka_producer()
        for event in result.canonical:
            headers = [("q2c.type", event.event_type)]
            if event.ref:
                headers.append(("q2c.ref", event.ref))
            if event.contract:
                headers.append(("q2c.contract", event.contract))
            value = self.wire.encode(event.event_type, event.model) if event.model is not None else None
            producer.produce(avro.topic_of(event.event_type), key=event.key.encode(), value=value, headers=headers)
            metrics.CANONICAL.labels(event.event_type).inc()
        self.dead_letter(letters, flush=False)
        self.flush()

    def _sink(self, result: BatchResult) -> None:
        if len(result.erp):
            self.write_retrying("ERP write", "erp", lambda c: erp_sink.write(c, result.erp))
            for table, rows in (("contract", result.erp.contracts), ("billing_schedule", result.erp.schedule),
                                ("billing_event", result.erp.events), ("project_cost", result.erp.costs),
                                ("receivable", result.erp.receivables)):
                if rows:
                    metrics.SINK_ROWS.labels("erp", table).inc(len(rows))
        if result.provisions:
            self.write_retrying("PSA provisioning", "psa", lambda c: psa_sink.write(c, result.provisions))
            metrics.SINK_ROWS.labels("psa", "project").inc(len(result.provisions))
        if result.financials:
            self.write_retrying("CRM account financials", "crm", lambda c: crm_sink.write(c, result.financials))
            metrics.SINK_ROWS.labels("crm", "account_financials").inc(len(result.financials))
