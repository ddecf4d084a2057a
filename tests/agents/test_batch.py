"""The batch handler's producer against the real broker: a record Kafka refuses fails the flush,
so the batch does not count as done (it is processed again, event by event, and the change that
cannot be delivered goes to the dead-letter topic)."""
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.agents.batch import BatchHandler, RecordsUndelivered

pytestmark = pytest.mark.stack


def test_a_record_the_broker_refuses_fails_the_flush_and_the_next_flush_starts_clean(stack):
    topic = f"q2c.test.small-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(stack.s.kafka_client_config())
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "1024"})])[topic].result(30)
    handler = BatchHandler(stack.s)
    producer = handler.kafka_producer()
    producer.produce(topic, key=b"k", value=b"x" * 100)
    producer.produce(topic, key=b"k", value=b"x" * 4096)  # within the producer's limit, above the topic's
    with pytest.raises(RecordsUndelivered, match=f"{topic}.*(too large|MSG_SIZE_TOO_LARGE)"):
        handler.flush()
    producer.produce(topic, key=b"k", value=b"x" * 100)
    handler.flush()  # delivered: nothing left over from the refused record
