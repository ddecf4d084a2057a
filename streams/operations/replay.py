"""``q2c replay --yes``: re-process every retained change event from the start.

The worker is stopped, its offsets on the source topics are set back to the start and its mirror
(and the source transactions it held open) is deleted; the end offsets of that moment are left
for it in ``run/replay-target.json``. Started again, it rebuilds the mirror from the first
retained change up to those offsets without writing anything (re-deriving at every step would
write the states in between, in whatever order the topics interleave), then derives every
engagement, invoice and account once, against the ledger of what was written. The sinks get
only real differences, so the ERP, PSA, CRM and warehouse end exactly as they were unless the
rules changed; the warehouse loader keeps its offsets."""
from __future__ import annotations

import json
import shutil
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.kafka_io import committed_offsets
from streams.stack.manager import Stack
from streams.topics import MIRROR, OPEN_TRANSACTIONS, ROUTES, changelog, source_topics


def replay_everything(stack: Stack, say=print) -> None:
    settings = stack.s
    say("stopping the worker")
    stack.worker.stop()
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    metadata = admin.list_topics(timeout=10).topics
    rewind = [TopicPartition(t, p, 0) for t in source_topics() if t in metadata for p in metadata[t].partitions]
    # The group's offsets can be changed once its members are gone: a stopped worker is a static
    # member until its session expires (Q2C_SESSION_TIMEOUT_S). A refusal may come per partition,
    # so the offsets are read back: the replay goes on only once every one of them is at 0.
    deadline = time.monotonic() + settings.session_timeout_s + 90
    while True:
        try:
            for future in admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(settings.app_id, rewind)]).values():
                future.result()
            at = committed_offsets(settings, [(tp.topic, tp.partition) for tp in rewind])
            if all(offset == 0 for offset in at.values()):
                break
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError("the workers' consumer group did not let its offsets be rewound (is a worker still running?)")
        time.sleep(1)
    ends = []
    reader = Consumer({**settings.kafka_client_config(), "group.id": f"{settings.app_id}-replay", "log_level": 0})
    try:
        for tp in rewind:
            ends.append({"topic": tp.topic, "partition": tp.partition,
                         "end": reader.get_watermark_offsets(tp, timeout=10)[1]})
    finally:
        reader.close()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.replay_target.write_text(json.dumps(ends))
    existing = set(metadata)
    # the mirror, the open transactions and (scaled out) what was routed: the sweep routes every
    # engagement whole again; the ledgers and the engagements' copies are kept
    doomed = [changelog(settings, t) for t in (MIRROR, OPEN_TRANSACTIONS, ROUTES) if changelog(settings, t) in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
        while set(doomed) & set(admin.list_topics(timeout=10).topics):
            time.sleep(0.5)
    shutil.rmtree(settings.home_dir / "faust", ignore_errors=True)  # local table state; the ledger restores from its changelog
    say("state deleted; starting the worker to re-process from the first retained change")
    stack.worker.start()


def progress(settings) -> tuple[int, int, bool]:
    """A replay under way: (changes re-read, changes to re-read, finished). The worker deletes
    ``run/replay-target.json`` once it has re-read up to it and derived everything again."""
    try:
        ends = {(t["topic"], t["partition"]): t["end"] for t in json.loads(settings.replay_target.read_text())}
    except FileNotFoundError:
        return 0, 0, True
    at = committed_offsets(settings, list(ends))
    return sum(min(at.get(tp, 0), end) for tp, end in ends.items()), sum(ends.values()), False
