"""``q2c replay --yes``: re-process every retained change event from the start.

The worker is stopped, its offsets on the source topics are set back to the start, its state
tables (mirror and ledger changelogs) are deleted, and it is started again: it rebuilds the mirror
from the first retained change and derives every row again. The sinks' upserts write only rows
that differ, so the ERP, PSA, CRM and warehouse end exactly as they were (the warehouse loader
keeps its offsets: it loads only what the replay publishes)."""
from __future__ import annotations

import shutil
import time

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.agents.topics import APP_ID, CHANGELOGS, source_topics
from streams.stack.manager import Stack


def replay_everything(stack: Stack, say=print) -> None:
    settings = stack.s
    say("stopping the worker")
    stack.worker.stop()
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    metadata = admin.list_topics(timeout=10).topics
    rewind = [TopicPartition(t, p, 0) for t in source_topics() if t in metadata for p in metadata[t].partitions]
    for attempt in range(90):  # the group's offsets can be changed once its members have left
        try:
            for future in admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(APP_ID, rewind)]).values():
                future.result()
            break
        except Exception:  # noqa: BLE001
            if attempt == 89:
                raise
            time.sleep(1)
    existing = set(metadata)
    doomed = [t for t in CHANGELOGS if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
        while set(doomed) & set(admin.list_topics(timeout=10).topics):
            time.sleep(0.5)
    shutil.rmtree(settings.home_dir / "faust", ignore_errors=True)
    say("state deleted; starting the worker to re-process from the first retained change")
    stack.worker.start()
