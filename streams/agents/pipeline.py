"""The capture agent's batch: decode → mirror and rules (``Processor``) → canonical topics and
dead letters → ERP, PSA and CRM sinks → ledger."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, MutableMapping

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.canonical import avro
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
        self.loaded = False

    def ready(self) -> None:
        """After Faust restored the tables: rebuild the mirror from its table."""
        started = time.monotonic()
        count = 0
        for ref, doc in self.mirror_table.items():
            if doc is not None:
                self.mirror.load(ref, doc)
                count += 1
        self.loaded = True
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
        result = self.processor.process(changes)
        for rejected in result.rejected:
            p = rejected.change.provenance
            letters.append((by_offset.get((p.topic, p.partition, p.offset)), rejected.reason, rejected.error, rejected.change.position))
        for ref, doc in result.mirror_writes.items():
            self.mirror_table[ref] = doc
        await asyncio.to_thread(self._publish, result, letters)
        await asyncio.to_thread(self._sink, result)
        self.processor.commit(result)
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
            value = avro.encode(event.event_type, event.model) if event.model is not None else None
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
