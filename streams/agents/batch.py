"""What every agent's batch handler shares: never losing a batch, dead letters, retrying sinks."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer

from streams.agents import metrics
from streams.agents.changelog import Changelog
from streams.config import Settings
from streams.sinks.retry import with_backoff
from streams.topics import DEAD_LETTER

log = logging.getLogger(__name__)


class RecordsUndelivered(RuntimeError):
    """Kafka refused records of a batch: the batch must not count as done."""


class BatchHandler:
    """Subclasses implement ``process(events)``; ``handle`` makes it safe to call from an agent."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.producer: Producer | None = None
        self.changelog = Changelog(self.kafka_producer)  # the tables' changelog records, on the same producer
        self.conns: dict[str, psycopg.Connection] = {}
        self._undelivered: list[str] = []  # delivery errors since the last flush

    async def process(self, events: list[Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def handle(self, events: list[Any]) -> None:
        """Process a batch; never raises. Faust commits the offsets of a batch an agent has taken
        even if the agent then crashes, so an exception here would lose those events: instead a
        failing batch is processed again event by event, and only an event that fails on its own
        goes to the dead-letter topic (with the error), from where it can be replayed."""
        started = time.monotonic()
        try:
            await self.process(events)
        except Exception:  # noqa: BLE001 - isolate the event that fails
            log.exception("a batch of %d events failed; processing them one by one", len(events))
            for event in events:
                try:
                    await self.process([event])
                except Exception as exc:  # noqa: BLE001
                    log.exception("event %s:%s:%s failed", event.message.topic, event.message.partition, event.message.offset)
                    await self._dead_letter_until_delivered([(event, "processing_error", f"{type(exc).__name__}: {exc}", None)])
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        metrics.BATCH_SIZE.observe(len(events))

    async def _dead_letter_until_delivered(self, letters) -> None:
        """The last line of defence may not fail either: wait (degraded) until Kafka takes it."""
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(self.dead_letter, letters)
                if attempt:
                    metrics.HEALTH.set("running")
                return
            except Exception:  # noqa: BLE001
                attempt += 1
                metrics.HEALTH.set("degraded", "the dead-letter topic is unreachable; retrying")
                log.exception("dead letter not delivered; retry %d", attempt)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(attempt, 6)))

    # --- Kafka -------------------------------------------------------------------------------

    def kafka_producer(self) -> Producer:
        if self.producer is None:
            self.producer = Producer({
                **self.s.kafka_client_config(), "enable.idempotence": True, "linger.ms": 5,
                "log_level": 3, "on_delivery": self._on_delivery,
            })
        return self.producer

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        """Delivery reports of the records produced without a callback of their own (canonical
        events, dead letters, routed bundles): a record Kafka refused (too large for its topic, a
        topic not allowed) is not among those a flush finds left, so without this it would be
        lost without a word."""
        if err is not None:
            self._undelivered.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def dead_letter(self, letters: list[tuple[Any, str, str, int | None]], flush: bool = True) -> None:
        """(event, reason, error, source LSN) → the dead-letter topic, with the original record."""
        producer = self.kafka_producer()
        now = datetime.now(UTC).isoformat()
        for event, reason, error, lsn in letters:
            msg = event.message if event is not None else None
            headers = {
                "q2c.reason": reason, "q2c.error": error[:4000], "q2c.failed_at": now,
                "q2c.source.topic": msg.topic if msg else "", "q2c.source.partition": str(msg.partition if msg else ""),
                "q2c.source.offset": str(msg.offset if msg else ""), "q2c.source.lsn": str(lsn if lsn is not None else ""),
            }
            producer.produce(DEAD_LETTER, key=event.key if event is not None else None,
                             value=event.value if event is not None else None, headers=list(headers.items()))
            metrics.REJECTED.labels(reason).inc()
            # the error text may quote row values (names, e-mails): it stays in the topic, not the log
            log.warning("dead letter: %s at %s:%s:%s (q2c dlq show for the reason)", reason, headers["q2c.source.topic"],
                        headers["q2c.source.partition"], headers["q2c.source.offset"])
        if flush:
            self.flush()

    def flush(self) -> None:
        """Every record queued so far (canonical events, dead letters, changelog records)
        delivered, or an error."""
        remaining = self.kafka_producer().flush(60)
        if remaining:
            raise RuntimeError(f"{remaining} messages not delivered to Kafka")
        if self._undelivered:
            undelivered, self._undelivered = self._undelivered, []
            raise RecordsUndelivered(f"Kafka refused {len(undelivered)} records, e.g. {undelivered[0]}")
        self.changelog.persist()

    # --- databases ----------------------------------------------------------------------------

    def _conn(self, database: str) -> psycopg.Connection:
        conn = self.conns.get(database)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.s.dsn(database, "sync"), autocommit=True, connect_timeout=5,
                                   options="-c lock_timeout=10s -c statement_timeout=60s")
            self.conns[database] = conn
        return conn

    def write_retrying(self, what: str, database: str, write) -> None:
        """Run ``write(connection)``; transient failures wait with backoff (the worker reports
        itself degraded meanwhile) and keep the batch, and so the order per engagement."""
        def attempt():
            try:
                write(self._conn(database))
            except psycopg.OperationalError:
                self.conns.pop(database, None)
                raise

        def on_wait(waiting: bool) -> None:
            metrics.HEALTH.set("degraded" if waiting else "running", f"{what} failing; retrying" if waiting else "")

        with_backoff(what, attempt, on_wait)
