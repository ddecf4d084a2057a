"""The warehouse loader: canonical events (Avro) from their topics → the star schema in
``warehouse``, and the audit records of the sinks' writes (``q2c.audit``) → its ``audit`` schema.

It runs in a process of its own beside the worker (``loader_process.py``) with a confluent-kafka
consumer of its own group (``<app id>-warehouse``), not as a Faust agent: it keeps no table and
needs nothing of Faust's but the delivery of events, and delivered through Faust the canonical
events were three of every four events the worker's Faust consumer handled (a time entry's change
publishes the entry, its billing event and its cost). Profiled with py-spy during a catch-up,
Faust's consumer thread and its delivery to the streams took more of the worker's time than the
rules.

A batch's offsets are committed only after the batch went through the commit protocol
(``commit.py``: dead letters published, the warehouse written, retried with backoff while it is
down, the records delivered) or, event by event, was dead-lettered: at-least-once, into
idempotent upserts. Static membership, as the worker's own group, lets a restarted worker take
its partitions back at once.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, Message

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.agents.commit import Commit, commit
from streams.canonical import avro
from streams.canonical.wire import CanonicalWire
from streams.capture.envelope import Provenance
from streams.sinks import audit, warehouse
from streams.state.audit import AuditRecord, decode_many
from streams.topics import AUDIT, COMMITTED_HEADER, canonical_topics

log = logging.getLogger(__name__)
LAG_EVERY_S = 10.0


@dataclass(frozen=True)
class Record:
    """A consumed record with the attributes the batch handler and the dead letters read."""
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    message: Provenance  # where it was read: the dead letters name it
    produced_at: datetime | None = None  # the record's timestamp: when the worker produced it

    @classmethod
    def of(cls, msg: Message) -> Record:
        kind, ms = msg.timestamp()
        produced = datetime.fromtimestamp(ms / 1000, UTC) if kind != TIMESTAMP_NOT_AVAILABLE else None
        return cls(msg.key(), msg.value(), dict(msg.headers() or ()), Provenance(msg.topic(), msg.partition(), msg.offset()),
                   produced)


class WarehouseLoader(BatchHandler):
    schema_ready = False

    def __init__(self, settings):
        super().__init__(settings)
        self.wire = CanonicalWire.from_settings(settings)
        self.stopping = threading.Event()

    def group(self) -> str:
        return f"{self.s.app_id}-warehouse"

    def run(self) -> None:
        """Read, load, commit, until ``stopping`` is set."""
        consumer = Consumer({
            **self.s.kafka_client_config(), "group.id": self.group(),
            "group.instance.id": f"{self.group()}-{socket.gethostname()}-{self.s.worker_web_port}",
            "session.timeout.ms": int(self.s.session_timeout_s * 1000),
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 3,
        })
        consumer.subscribe([*canonical_topics(), AUDIT])
        loop = asyncio.new_event_loop()  # the handler's retries and dead letters are coroutines
        lag_at = 0.0
        try:
            self._ensure_schema_early()
            while not self.stopping.is_set():
                if time.monotonic() - lag_at >= LAG_EVERY_S:
                    lag_at = time.monotonic()
                    self._measure_lag(consumer)
                records = []
                for msg in consumer.consume(self.s.batch_size, timeout=self.s.batch_within_s):
                    if msg.error() is not None:
                        log.warning("warehouse loader: %s", msg.error())
                    else:
                        records.append(Record.of(msg))
                if not records:
                    continue
                loop.run_until_complete(self.handle(records))
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as exc:  # e.g. partitions revoked meanwhile: their new owner reads them again
                    log.warning("warehouse loader: offsets not committed (%s); the batch will be loaded again", exc)
        except Exception:  # noqa: BLE001 - its process ends; the worker says so and starts it again
            log.exception("the warehouse loader stopped")
            metrics.HEALTH.set("degraded", "the warehouse loader stopped")
        finally:
            consumer.close()
            loop.close()

    def _measure_lag(self, consumer: Consumer) -> None:
        """``q2c_consumer_lag_records`` of the loader's partitions (a diagnostic: never fatal)."""
        try:
            parts = consumer.assignment()
            if not parts:
                return
            for tp in consumer.position(parts):
                end = consumer.get_watermark_offsets(tp, timeout=2)[1]
                read = tp.offset if tp.offset >= 0 else 0
                metrics.CONSUMER_LAG.labels(self.group(), tp.topic, str(tp.partition)).set(max(0, end - read))
        except KafkaException as exc:
            log.debug("warehouse loader: lag not measured (%s)", exc)

    async def process(self, events: list[Any]) -> None:
        loads: list[warehouse.Load] = []
        records: list[tuple[AuditRecord, datetime | None]] = []
        letters = []
        commits: set[float] = set()
        for event in events:
            if event.message.topic == AUDIT:
                try:
                    records.extend((r, event.produced_at) for r in decode_many(event.value))
                except (ValueError, TypeError, KeyError) as exc:
                    letters.append((event, "undecodable", f"not an audit record: {exc}", None))
                continue
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in (event.headers or {}).items()}
            event_type = headers.get("q2c.type")
            if COMMITTED_HEADER in headers:
                commits.add(float(headers[COMMITTED_HEADER]))
            try:
                record = None
                if event.value is not None:
                    event_type, record = self.wire.decode(event.value, event.message.topic)
            except avro.UnknownSchema as exc:
                letters.append((event, "undecodable", str(exc), None))
                continue
            if event_type:
                loads.append(warehouse.Load(event_type, record, headers.get("q2c.ref"), headers.get("q2c.contract")))

        def load() -> None:
            if loads or records:
                self.sinks.write("warehouse load", "warehouse", self._write(loads, records))

        await commit(Commit(publish=lambda: self.dead_letter(letters, flush=False), sinks=load), self.flush)
        if loads or records:
            metrics.SINK_ROWS.labels("warehouse", "all").inc(len(loads))
            metrics.observe_latency(["warehouse"], commits, time.time())  # each source commit behind the batch once

    def _ensure_schema_early(self) -> None:
        """The schemas before the first event, so that readers (``q2c audit``, the views) find them
        on a quiet system; if the warehouse is away, the first load makes them instead."""
        try:
            self._ensure_schema(self.sinks.connection("warehouse"))
        except psycopg.Error as exc:
            self.sinks.forget("warehouse")
            log.info("warehouse loader: schemas not made yet (%s); the first load makes them", exc)

    def _ensure_schema(self, conn) -> None:
        if not self.schema_ready:
            warehouse.ensure_schema(conn)
            audit.ensure_schema(conn)
            self.schema_ready = True

    def _write(self, loads, records):
        def write(conn):
            self._ensure_schema(conn)
            warehouse.write(conn, loads)
            kept = audit.write(conn, records)
            if kept:
                metrics.SINK_ROWS.labels("warehouse", "audit.sink_write").inc(kept)
        return write
