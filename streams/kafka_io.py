"""Reading topics from the start and measuring the worker's lag, with confluent-kafka."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.errors import Unreachable


def read_all(settings: Settings, topic: str, follow: bool = False, idle_s: float = 2.0,
             until: float | None = None) -> Iterator[Message]:
    """Every message of ``topic`` from the start (a throw-away group: nothing is committed); with
    ``follow``, new ones as they come, until the ``time.monotonic()`` deadline ``until`` if given."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"q2c-reader-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0})
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:
            raise Unreachable(f"Kafka at {settings.bootstrap} unreachable: {exc.args[0].str()}") from exc
        if metadata is None or metadata.error is not None:
            return
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
        consumer.assign(partitions)
        done = {p for p, end in ends.items() if end == 0}
        while (follow or len(done) < len(ends)) and (until is None or time.monotonic() < until):
            msg = consumer.poll(idle_s)
            if msg is None:
                if not follow:
                    break
                continue
            if msg.error():
                continue
            yield msg
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                done.add(msg.partition())
    finally:
        consumer.close()


def _group_consumer(settings: Settings, group: str | None) -> Consumer:
    """A consumer in the workers' group (the app's unless ``group``) that never subscribes: it reads
    the group's commits and the watermarks, and commits nothing."""
    return Consumer({**settings.kafka_client_config(), "group.id": group or settings.app_id,
                     "enable.auto.commit": False, "log_level": 0})


def committed_offsets(settings: Settings, partitions: list[tuple[str, int]], group: str | None = None) -> dict[tuple[str, int], int]:
    """The offsets the workers (the app's consumer group) committed: the next to read, 0 if none."""
    consumer = _group_consumer(settings, group)
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
    finally:
        consumer.close()


def lag_by_partition(settings: Settings, topics: list[str], group: str | None = None) -> dict[tuple[str, int], int]:
    """Events of ``topics`` the workers (the app's consumer group) have not yet committed, by
    partition (only those with some)."""
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    consumer = _group_consumer(settings, group)
    try:
        metadata = admin.list_topics(timeout=10).topics
        partitions = [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
        lag = {}
        for tp in consumer.committed(partitions, timeout=10):
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            behind = high - (tp.offset if tp.offset >= 0 else 0)
            if behind:
                lag[(tp.topic, tp.partition)] = behind
        return lag
    finally:
        consumer.close()


def worker_lag(settings: Settings, topics: list[str], group: str | None = None) -> int:
    """Events of ``topics`` the workers have not yet committed (sum over partitions)."""
    return sum(lag_by_partition(settings, topics, group).values())
