"""What every agent's batch handler shares: never losing a batch, dead letters, the sink writer."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from confluent_kafka import KafkaError, Message, Producer

from streams.agents import metrics
from streams.agents.changelog import Changelog
from streams.config import Settings
from streams.sinks.retry import with_backoff
from streams.sinks.writer import SinkWriter
from streams.topics import DEAD_LETTER

log = logging.getLogger(__name__)
T = TypeVar("T")


class RecordsUndelivered(RuntimeError):
    """Kafka refused records of a batch: the batch must not count as done."""


class BatchHandler:
    """Subclasses implement ``process(events)``; ``handle`` makes it safe to call from an agent."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.producer: Producer | None = None
        self.changelog = Changelog(self.kafka_producer)  # the tables' changelog records, on the same producer
        self.sinks = SinkWriter(lambda database: settings.dsn(database, "sync"), self._report_wait)
        self._undelivered: list[str] = []  # delivery errors since the last flush

    async def process(self, events: list[Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def handle(self, events: list[Any]) -> None:
        """Process a batch; never raises. Faust commits the offsets of a batch an agent has taken
        even if the agent then crashes, so an exception here would lose those events: instead a
        failing batch is processed again event by event (``one_by_one``), and only an event that
        fails on its own goes to the dead-letter topic (with the error), from where it can be
        replayed."""
        started = time.monotonic()
        try:
            await self.process(events)
        except Exception:  # noqa: BLE001 - isolate the event that fails
            log.exception("a batch of %d events failed; processing them one by one", len(events))
            await self.one_by_one(events, lambda event: self.process([event]),
                                  lambda event, exc: (event, "processing_error", f"{type(exc).__name__}: {exc}", None))
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        metrics.BATCH_SIZE.observe(len(events))

    async def one_by_one(self, items: list[T], attempt: Callable[[T], Awaitable[None]],
                         letter_of: Callable[[T, Exception], tuple[Any, str, str, int | None]]) -> None:
        """The fall-back of a failed batch, at every level (events, source changes): each item on
        its own; one that fails alone goes to the dead-letter topic, the others go through."""
        for item in items:
            try:
                await attempt(item)
            except Exception as exc:  # noqa: BLE001
                log.exception("one item of a failed batch failed on its own")
                await self._dead_letter_until_delivered([letter_of(item, exc)])

    async def _dead_letter_until_delivered(self, letters) -> None:
        """The last line of defence may not fail either: retried with the sinks' retry policy
        (degraded meanwhile) until Kafka takes it."""
        await asyncio.to_thread(with_backoff, "dead-letter delivery", lambda: self.dead_letter(letters),
                                lambda waiting: self._report_wait("dead-letter delivery", waiting), transient=(Exception,))

    @staticmethod
    def _report_wait(what: str, waiting: bool) -> None:
        metrics.HEALTH.set("degraded" if waiting else "running", f"{what} failing; retrying" if waiting else "")

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
        if not letters:
            return
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
        if self.producer is None:  # nothing was ever queued (a loader batch without dead letters)
            return
        remaining = self.producer.flush(60)
        if remaining:
            raise RuntimeError(f"{remaining} messages not delivered to Kafka")
        if self._undelivered:
            undelivered, self._undelivered = self._undelivered, []
            raise RecordsUndelivered(f"Kafka refused {len(undelivered)} records, e.g. {undelivered[0]}")
        self.changelog.persist()
