"""The capture agent's batch: decode → mirror and rules (``Processor``) → canonical topics and
dead letters → ERP, PSA and CRM sinks → ledger."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, MutableMapping

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.canonical import avro
from streams.canonical.wire import CanonicalWire
from streams.capture.envelope import Provenance, RowChange, UndecodableEvent, decode
from streams.config import Settings
from streams.sinks import crm as crm_sink
from streams.sinks import erp as erp_sink
from streams.sinks import psa as psa_sink
from streams.state.mirror import SourceMirror
from streams.state.processor import BatchResult, Processor

log = logging.getLogger(__name__)


class CapturePipeline(BatchHandler):
    def __init__(self, settings: Settings, mirror_table: MutableMapping, ledger_table: MutableMapping):
        super().__init__(settings)
        self.mirror_table = mirror_table
        self.mirror = SourceMirror()
        self.processor = Processor(self.mirror, ledger_table)
        self.wire = CanonicalWire.from_settings(settings)
        self.loaded = False
        self.replay_target = settings.run_dir / "replay-target.json"
        self.rebuild_until: dict[tuple[str, int], int] = {}

    def ready(self) -> None:
        """After Faust restored the tables: rebuild the mirror from its table."""
        started = time.monotonic()
        count = 0
        for ref, doc in self.mirror_table.items():
            if doc is not None:
                self.mirror.load(ref, doc)
                count += 1
        self.loaded = True
        if self.replay_target.exists():  # `q2c replay`: rebuild quietly up to these offsets first
            target = json.loads(self.replay_target.read_text())
            self.rebuild_until = {(t["topic"], t["partition"]): t["end"] for t in target if t["end"] > 0}
            log.info("replay: rebuilding the mirror up to %d partitions' end offsets before deriving", len(self.rebuild_until))
            if not self.rebuild_until:
                self.replay_target.unlink()
        metrics.HEALTH.set("running")
        log.info("mirror rebuilt from its table: %d rows in %.2fs", count, time.monotonic() - started)

    async def handle(self, events: list[Any]) -> None:
        if not self.loaded:
            self.ready()
        await super().handle(events)

    async def process(self, events: list[Any]) -> None:
        changes: list[RowChange] = []
        letters: list[tuple[Any, str, str, int | None]] = []
        by_offset = {(e.message.topic, e.message.partition, e.message.offset): e for e in events}
        for event in events:
            msg = event.message
            try:
                change = decode(msg.topic, event.key, event.value, Provenance(msg.topic, msg.partition, msg.offset))
            except UndecodableEvent as exc:
                letters.append((event, "undecodable", str(exc), None))
                continue
            if change is not None:
                metrics.CHANGES.labels(change.table_id, change.op).inc()
                changes.append(change)
        rebuilding = bool(self.rebuild_until)
        result = self.processor.process(changes, derive_outputs=not rebuilding)
        if rebuilding:
            for event in events:
                key = (event.message.topic, event.message.partition)
                if key in self.rebuild_until and event.message.offset + 1 >= self.rebuild_until[key]:
                    del self.rebuild_until[key]
            if not self.rebuild_until:  # caught up with where the replay started: derive everything once
                log.info("replay: mirror rebuilt; deriving every engagement, invoice and account")
                self.processor.sweep(result)
        for rejected in result.rejected:
            p = rejected.change.provenance
            letters.append((by_offset.get((p.topic, p.partition, p.offset)), rejected.reason, rejected.error, rejected.change.position))
        for ref, doc in result.mirror_writes.items():
            self.mirror_table[ref] = doc
        await asyncio.to_thread(self._publish, result, letters)
        await asyncio.to_thread(self._sink, result)
        self.processor.commit(result)
        if rebuilding and not self.rebuild_until:
            self.replay_target.unlink(missing_ok=True)
        stamps = [c.committed_at for c in changes if c.committed_at]
        if stamps:
            metrics.LAG.set((datetime.now(timezone.utc) - max(stamps)).total_seconds())

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
