"""What the capture agent does with one batch; the I/O shell around ``Processor``."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, MutableMapping

import psycopg
from confluent_kafka import Producer

from streams.agents import metrics
from streams.agents.topics import DEAD_LETTER
from streams.canonical import avro
from streams.capture.envelope import Provenance, RowChange, UndecodableEvent, decode
from streams.config import Settings
from streams.sinks import crm as crm_sink
from streams.sinks import erp as erp_sink
from streams.sinks import psa as psa_sink
from streams.sinks.retry import with_backoff
from streams.state.mirror import SourceMirror
from streams.state.processor import BatchResult, Processor, Rejected

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, settings: Settings, mirror_table: MutableMapping, ledger_table: MutableMapping):
        self.s = settings
        self.mirror_table = mirror_table
        self.ledger_table = ledger_table
        self.mirror = SourceMirror()
        self.processor = Processor(self.mirror, ledger_table)
        self.loaded = False
        self.producer: Producer | None = None
        self.conns: dict[str, psycopg.Connection] = {}

    # --- state ---------------------------------------------------------------------------------

    def _load_mirror(self) -> None:
        started = time.monotonic()
        count = 0
        for ref, doc in self.mirror_table.items():
            if doc is not None:
                self.mirror.load(ref, doc)
                count += 1
        self.loaded = True
        log.info("mirror rebuilt from its table: %d rows in %.2fs", count, time.monotonic() - started)

    def ready(self) -> None:
        self._load_mirror()
        metrics.HEALTH.set("running")

    # --- the batch -----------------------------------------------------------------------------

    async def handle(self, events: list[Any]) -> None:
        """Process a batch; never raises. Faust commits the offsets of a batch an agent has taken
        even if the agent then crashes, so an exception here would lose those events: instead a
        failing batch is processed again event by event, and only an event that fails on its own
        goes to the dead-letter topic (with the error), from where it can be replayed."""
        started = time.monotonic()
        if not self.loaded:
            self.ready()
        try:
            await self._handle(events)
        except Exception:  # noqa: BLE001 - isolate the event that fails
            log.exception("a batch of %d events failed; processing them one by one", len(events))
            for event in events:
                try:
                    await self._handle([event])
                except Exception as exc:  # noqa: BLE001
                    log.exception("event %s:%s:%s failed", event.message.topic, event.message.partition, event.message.offset)
                    await asyncio.to_thread(
                        self._publish, BatchResult(), [(event, Rejected(None, "processing_error", f"{type(exc).__name__}: {exc}"))]
                    )
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        metrics.BATCH_SIZE.observe(len(events))

    async def _handle(self, events: list[Any]) -> None:
        changes: list[RowChange] = []
        rejected: list[tuple[Any, Rejected]] = []
        for event in events:
            msg = event.message
            provenance = Provenance(msg.topic, msg.partition, msg.offset)
            try:
                change = decode(msg.topic, event.key, event.value, provenance)
            except UndecodableEvent as exc:
                rejected.append((event, Rejected(None, "undecodable", str(exc))))
                continue
            if change is not None:
                metrics.CHANGES.labels(change.table_id, change.op).inc()
                changes.append(change)
        result = self.processor.process(changes)
        originals = {(e.message.topic, e.message.partition, e.message.offset): e for e in events}
        for rej in result.rejected:
            p = rej.change.provenance
            rejected.append((originals.get((p.topic, p.partition, p.offset)) if p else None, rej))
        for ref, doc in result.mirror_writes.items():
            self.mirror_table[ref] = doc
        await asyncio.to_thread(self._publish, result, rejected)
        await asyncio.to_thread(self._sink, result)
        self.processor.commit(result)
        stamps = [c.committed_at for c in changes if c.committed_at]
        if stamps:
            metrics.LAG.set((datetime.now(timezone.utc) - max(stamps)).total_seconds())

    # --- Kafka: canonical events and dead letters -----------------------------------------------

    def _producer(self) -> Producer:
        if self.producer is None:
            self.producer = Producer({
                **self.s.kafka_client_config(), "enable.idempotence": True, "linger.ms": 5,
                "compression.type": "lz4", "log_level": 3,
            })
        return self.producer

    def _publish(self, result: BatchResult, rejected: list[tuple[Any, Rejected]]) -> None:
        producer = self._producer()
        for event_type, key, model in result.canonical:
            producer.produce(avro.topic_of(event_type), key=key.encode(), value=avro.encode(event_type, model))
            metrics.CANONICAL.labels(event_type).inc()
        now = datetime.now(timezone.utc).isoformat()
        for event, rej in rejected:
            msg = event.message if event is not None else None
            headers = {
                "q2c.reason": rej.reason, "q2c.error": rej.error[:4000], "q2c.failed_at": now,
                "q2c.source.topic": msg.topic if msg else "", "q2c.source.partition": str(msg.partition if msg else ""),
                "q2c.source.offset": str(msg.offset if msg else ""),
                "q2c.source.lsn": str(rej.change.position if rej.change else ""),
            }
            producer.produce(DEAD_LETTER, key=event.key if event is not None else None,
                             value=event.value if event is not None else None,
                             headers=list(headers.items()))
            metrics.REJECTED.labels(rej.reason).inc()
            log.warning("dead letter: %s at %s:%s:%s: %s", rej.reason, headers["q2c.source.topic"],
                        headers["q2c.source.partition"], headers["q2c.source.offset"], rej.error[:300])
        remaining = producer.flush(60)
        if remaining:
            raise RuntimeError(f"{remaining} canonical events or dead letters not delivered to Kafka")

    # --- databases ----------------------------------------------------------------------------

    def _conn(self, database: str) -> psycopg.Connection:
        conn = self.conns.get(database)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.s.dsn(database), autocommit=True, connect_timeout=5,
                                   options="-c lock_timeout=10s -c statement_timeout=60s")
            self.conns[database] = conn
        return conn

    def _retrying(self, what: str, database: str, write) -> None:
        def attempt():
            try:
                write(self._conn(database))
            except psycopg.OperationalError:
                self.conns.pop(database, None)
                raise

        def on_wait(waiting: bool) -> None:
            metrics.HEALTH.set("degraded" if waiting else "running", f"{what} failing; retrying" if waiting else "")

        with_backoff(what, attempt, on_wait)

    def _sink(self, result: BatchResult) -> None:
        if len(result.erp):
            self._retrying("ERP write", "erp", lambda c: erp_sink.write(c, result.erp))
            for table, rows in (("contract", result.erp.contracts), ("billing_schedule", result.erp.schedule),
                                ("billing_event", result.erp.events), ("project_cost", result.erp.costs),
                                ("receivable", result.erp.receivables)):
                if rows:
                    metrics.SINK_ROWS.labels("erp", table).inc(len(rows))
        if result.provisions:
            self._retrying("PSA provisioning", "psa", lambda c: psa_sink.write(c, result.provisions))
            metrics.SINK_ROWS.labels("psa", "project").inc(len(result.provisions))
        if result.financials:
            self._retrying("CRM account financials", "crm", lambda c: crm_sink.write(c, result.financials))
            metrics.SINK_ROWS.labels("crm", "account_financials").inc(len(result.financials))
