"""The seek after a rebalance, on the real broker: a partition the group never committed goes back
to its beginning (aiokafka alone leaves it where the fetcher got to: aio-libs/aiokafka#1003), one
with a committed offset goes there (0 included), and a changelog partition is left where it is."""
import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.agents.kafka_transport import seek_to_committed

pytestmark = pytest.mark.stack


async def _read(consumer: AIOKafkaConsumer, count: int) -> list[int]:
    offsets: list[int] = []
    for _ in range(10):
        for records in (await consumer.getmany(timeout_ms=3000)).values():
            offsets += [r.offset for r in records]
        if len(offsets) >= count:
            return offsets
    raise AssertionError(f"read {offsets}, expected {count} records")


async def _scenario(bootstrap: str) -> dict:
    streamed, changelog = (f"q2c-test-seek-{uuid.uuid4().hex[:8]}{suffix}" for suffix in ("", "-changelog"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic in (streamed, changelog):
            for n in range(3):
                await producer.send_and_wait(topic, f"{n}".encode(), partition=0)
    finally:
        await producer.stop()
    tp, changelog_tp = TopicPartition(streamed, 0), TopicPartition(changelog, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"q2c-test-seek-{uuid.uuid4()}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp, changelog_tp])
        seen = {"read": sorted(await _read(consumer, 6))}
        await consumer.seek_to_committed()
        seen["aiokafka alone"] = await consumer.position(tp)
        committed = await seek_to_committed(consumer, [changelog])
        seen["committed"] = committed[tp]
        seen["never committed"], seen["changelog"] = await consumer.position(tp), await consumer.position(changelog_tp)
        seen["read again"] = await _read(consumer, 3)
        await consumer.commit({tp: 2})
        await seek_to_committed(consumer, [changelog])
        seen["committed 2"] = await consumer.position(tp)
        await _read(consumer, 1)
        await consumer.commit({tp: 0})
        await seek_to_committed(consumer, [changelog])
        seen["committed 0"] = await consumer.position(tp)  # aiokafka alone skips 0 as well
        return seen
    finally:
        await consumer.stop()


def test_a_partition_never_committed_is_read_again_from_its_beginning(stack):
    seen = asyncio.run(_scenario(stack.s.bootstrap))
    assert seen["read"] == [0, 0, 1, 1, 2, 2]
    assert seen["aiokafka alone"] == 3  # the upstream behaviour this module mends
    assert seen["committed"] is None
    assert seen["never committed"] == 0
    assert seen["read again"] == [0, 1, 2]
    assert seen["changelog"] == 3  # Faust's recovery places changelog partitions itself
    assert seen["committed 2"] == 2
    assert seen["committed 0"] == 0


def test_the_worker_reads_kafka_through_the_mended_transport():
    from streams.agents import kafka_transport
    from streams.agents.app import build_app
    from streams.config import load

    assert isinstance(build_app(load()).app.consumer._thread, kafka_transport.ConsumerThread)
