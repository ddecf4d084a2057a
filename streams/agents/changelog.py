"""The changelog records of the worker's tables, produced through confluent-kafka.

A Faust table sends a changelog record per write through its aiokafka producer: a
``FutureMessage``, Faust's producer buffer task, and aiokafka's batching and protocol encoding in
Python, per record. Profiled with py-spy during a catch-up (10,000 approved time entries, one
worker), that was the largest single part of the worker's busy time: about 1,200 of some 2,600
samples of its event loop, more than the rules, the mirror and the decoding together. The sync
writes its tables from batches and ends every batch with a flush anyway, so the records go through
librdkafka (the producer the canonical events already use) with the same topic, partition, key and
value bytes Faust would send: Faust's recovery reads them back as its own.

Once a flush has delivered them, the offset of the last record per changelog partition is kept
in the partition's local database (``set_persisted_offset``), as Faust's own delivery callback does
(``Collection._on_changelog_sent``), so a restart reads only the changelog's tail; then the store's
``checkpoint`` writes its memtables to disk when due (the local databases keep no write-ahead log:
``table_store.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from faust.types import TP

from streams.agents.table_entry import put_or_remove


class ChangelogUndelivered(RuntimeError):
    """Kafka did not take a table's changelog record: the batch must not count as done."""


class Changelog:
    def __init__(self, producer: Callable[[], Producer]):
        self._producer = producer
        self._topics: dict[int, str] = {}   # id(table) → its changelog topic
        self._stores: dict[str, Any] = {}   # changelog topic → the table's store
        self._delivered: dict[tuple[str, int], int] = {}
        self._errors: list[str] = []

    def put(self, table: Any, key: str, value: Any | None, partition: int | None = None) -> None:
        """One entry of ``table`` set (None: removed) in its local database, and its changelog
        record queued (delivered by the producer's next flush). ``partition``: the entry's, for
        a table the sync partitions itself (the RocksDB store knows it from the key)."""
        store = table.data
        if value is None and key not in store:
            return  # a missing key would cost a needless tombstone in the changelog
        if not hasattr(store, "write"):  # Faust's in-memory store (Q2C_TABLE_STORE=memory): Faust's path
            self._put_through_faust(table, key, value, partition)
            return
        topic = self._topics.get(id(table))
        if topic is None:
            topic = self._topics[id(table)] = table.changelog_topic.get_topic_name()
            self._stores[topic] = store
        key_bytes, value_bytes, partition = store.write(key, value)
        producer = self._producer()
        while True:
            try:
                producer.produce(topic, value=value_bytes, key=key_bytes, partition=partition, on_delivery=self._on_delivery)
                return
            except BufferError:  # librdkafka's queue is full: let it send
                producer.poll(0.1)

    @staticmethod
    def _put_through_faust(table: Any, key: str, value: Any | None, partition: int | None) -> None:
        if partition is None:
            put_or_remove(table, key, value)
        elif value is None:
            del table.data[key]
            table.send_changelog(partition, key, None, value_serializer="raw")
        else:
            table.data[key] = value
            table.send_changelog(partition, key, value)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
            return
        where = (msg.topic(), msg.partition())
        if msg.offset() > self._delivered.get(where, -1):
            self._delivered[where] = msg.offset()

    def persist(self) -> None:
        """After the producer's flush: fail if a record was not delivered; else keep each
        changelog partition's last delivered offset in its local database."""
        if self._errors:
            errors, self._errors = self._errors, []
            self._delivered.clear()
            raise ChangelogUndelivered(f"{len(errors)} changelog records not delivered, e.g. {errors[0]}")
        delivered, self._delivered = self._delivered, {}
        for (topic, partition), offset in delivered.items():
            self._stores[topic].set_persisted_offset(TP(topic, partition), offset)
        for topic in {topic for topic, _ in delivered}:
            self._stores[topic].checkpoint()
