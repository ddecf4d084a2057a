"""The worker's table store: each key in the local RocksDB database of the partition its changelog
record goes to, written from a batch (no current event), and still there after a restart."""
import asyncio
import json
import uuid

import faust
import pytest
from aiokafka import AIOKafkaProducer

from streams.agents.table_store import Store, table_options

KEYS = [f"eng:Q-{n}|event|TE:Q-{n}:{n}:abc" for n in range(40)]


def _table(datadir, name="t", partitions=4, partition_of=None):
    app = faust.App(f"q2c-test-store-{uuid.uuid4().hex[:6]}", datadir=str(datadir), store="keyed-rocksdb://")
    if partition_of is None:
        table = app.Table(name, default=None, partitions=partitions, use_partitioner=True, options=table_options())
    else:
        table = app.Table(name, default=None, partitions=partitions, options=table_options(partition_of))
    return table


def _partition_dbs(store: Store) -> dict[int, set[str]]:
    return {p: {store._decode_key(k) for k in store._visible_keys(db)} for p, db in store._dbs.items()}


def test_the_worker_keeps_its_tables_in_this_store():
    from streams.agents.app import build_app
    from streams.config import load

    sync = build_app(load())
    assert isinstance(sync.mirror_table.data, Store) and isinstance(sync.ledger_table.data, Store)


def test_a_key_written_from_a_batch_lands_in_its_partitions_database_and_survives_a_restart(tmp_path):
    table = _table(tmp_path)
    store = table.data
    for key in KEYS:  # no current event: Faust's own store asserts here
        store[key] = {"k": key}
    held = _partition_dbs(store)
    assert sum(len(keys) for keys in held.values()) == len(KEYS) and len(held) > 1
    for partition, keys in held.items():
        assert all(store._partition(store._encode_key(k)) == partition for k in keys)
    assert store[KEYS[3]] == {"k": KEYS[3]} and KEYS[3] in store
    del store[KEYS[3]]
    assert KEYS[3] not in store
    store._dbs.clear()  # the process ends (Faust's stop keeps no handle either)
    again = _table(tmp_path).data
    for key in KEYS[4:]:
        assert again[key] == {"k": key}
    assert KEYS[3] not in again


def test_a_scan_reads_a_key_prefix_in_order_across_the_partitions_databases(tmp_path, monkeypatch):
    store = _table(tmp_path).data
    for key in KEYS + ["eng:Q-1", "eng:Q-1|linked|psa.project:1", "eng:Q-10|event|x", 'ix|q"uote|1|crm.quote:1']:
        store[key] = {"k": key}
    monkeypatch.setattr(store, "_dbs_for_actives", lambda: iter(store._dbs.values()))  # no group here: every partition is ours
    assert len(store._dbs) > 1
    found = list(store.scan("eng:Q-1|"))
    assert [k for k, _ in found] == ["eng:Q-1|event|TE:Q-1:1:abc", "eng:Q-1|linked|psa.project:1"]
    assert found[1][1] == {"k": "eng:Q-1|linked|psa.project:1"}
    assert [k for k, _ in store.scan('ix|q"uote|')] == ['ix|q"uote|1|crm.quote:1']  # an escaped character in the prefix
    assert len(list(store.scan("eng:"))) == len(KEYS) + 3 and list(store.scan("nothing")) == []


def test_get_reads_an_entry_or_gives_the_default_as_a_mapping_does(tmp_path):
    store = _table(tmp_path).data
    store["eng:Q-1"] = {"k": 1}
    assert store.get("eng:Q-1") == {"k": 1} == store["eng:Q-1"]
    assert store.get("eng:Q-2") is None and store.get("eng:Q-2", "none") == "none"
    assert "eng:Q-1" in store and "eng:Q-2" not in store


def test_a_string_key_is_encoded_as_the_tables_have_always_held_it_and_fausts_codec_reads_it(tmp_path):
    """The JSON of ``json.dumps`` (non-ASCII escaped), whichever JSON library Faust's codec uses
    (orjson, installed, writes non-ASCII as UTF-8): a key keeps its bytes, and so its local
    database and changelog partition, across versions."""
    store = _table(tmp_path).data
    for key in KEYS[:3] + ['ix|q"uote|caf\u00e9 \\ \u2603|crm.quote:1', "tab\there", ""]:
        encoded = store._encode_key(key)
        assert encoded == json.dumps(key).encode()
        assert store.app.serializers.loads_key(None, encoded, serializer="json") == key
        assert store._decode_key(encoded) == key
        if key.isascii():
            assert encoded == store.app.serializers.dumps_key(None, key, serializer="json")


def test_a_table_partitioned_by_the_sync_keeps_each_key_where_the_sync_sends_its_record(tmp_path):
    store = _table(tmp_path, "e", 3, partition_of=lambda key: int(key.split("-")[1].split("|")[0]) % 3).data
    for key in KEYS:
        store[key] = 1
    for partition, keys in _partition_dbs(store).items():
        assert {int(k.split("-")[1].split("|")[0]) % 3 for k in keys} == {partition}


async def _partitions_kafka_chose(bootstrap: str, topic: str, keys: list[bytes]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)  # Faust's producer: aiokafka's default partitioner
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, b"v", key=key)).partition for key in keys]
    finally:
        await producer.stop()


@pytest.mark.stack
def test_the_store_picks_the_partition_the_changelog_record_goes_to(stack, tmp_path):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"q2c-test-store-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(stack.s.kafka_client_config())
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    store = _table(tmp_path).data
    encoded = [store._encode_key(k) for k in KEYS]
    chosen = asyncio.run(_partitions_kafka_chose(stack.s.bootstrap, topic, encoded))
    assert [store._partition(k) for k in encoded] == chosen
    assert len(set(chosen)) > 1


@pytest.mark.stack
def test_changelog_records_sent_through_confluent_kafka_rebuild_the_table_and_persist_their_offsets(stack, tmp_path):
    from types import SimpleNamespace

    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from faust.types import TP

    from streams.agents.changelog import Changelog

    table = _table(tmp_path / "a")
    topic = table.changelog_topic.get_topic_name()
    admin = AdminClient(stack.s.kafka_client_config())
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    producer = Producer({**stack.s.kafka_client_config(), "enable.idempotence": True})
    changelog = Changelog(lambda: producer)
    for key in KEYS:
        changelog.put(table, key, {"k": key})
    changelog.put(table, KEYS[3], None)
    changelog.put(table, "never written", None)  # no tombstone for a key that is not there
    assert producer.flush(30) == 0
    changelog.persist()

    consumer = Consumer({**stack.s.kafka_client_config(), "group.id": f"t-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    records = []
    while len(records) < sum(ends.values()):
        msg = consumer.poll(10)
        assert msg is not None and msg.error() is None
        records.append(msg)
    consumer.close()
    assert len(records) == len(KEYS) + 1  # every entry and the one removal
    store = table.data
    for msg in records:  # each record in the partition of its key's local database, with its bytes
        assert store._partition(msg.key()) == msg.partition()
    for p, end in ends.items():
        assert store.persisted_offset(TP(topic, p)) == (end - 1 if end else None)

    # what Faust's recovery does with the records: a new host's table holds the same entries
    rebuilt = _table(tmp_path / "b").data
    events = [SimpleNamespace(message=SimpleNamespace(tp=TP(m.topic(), m.partition()), partition=m.partition(),
                                                      offset=m.offset(), key=m.key(), value=m.value()))
              for m in records]  # as Faust's recovery hands them over
    rebuilt.apply_changelog_batch(events, None, None)
    assert {k: rebuilt[k] for k in KEYS if k != KEYS[3]} == {k: {"k": k} for k in KEYS if k != KEYS[3]}
    assert KEYS[3] not in rebuilt


_CRASHING_WRITER = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from faust.types import TP
from tests.agents.test_table_store import KEYS, _table
store = _table({path!r}).data
tp = TP(store.table.changelog_topic.get_topic_name(), 0)
for key in KEYS[:20]:
    store[key] = 1
store.set_persisted_offset(tp, 10)
store.checkpoint(every=0)
time.sleep(2)  # the flush it started has ended
for key in KEYS[20:]:
    store[key] = 2
store.set_persisted_offset(tp, 20)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crash_loses_what_was_written_since_the_last_checkpoint_as_a_whole_and_nothing_before_it(tmp_path):
    """No write-ahead log: after a ``kill -9`` a database holds what it held at its last checkpoint,
    the persisted offset with it, so Faust's recovery reads the changelog again from there."""
    import subprocess
    import sys
    from pathlib import Path

    from faust.types import TP

    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", _CRASHING_WRITER.format(root=root, path=str(tmp_path))], timeout=60)
    assert done.returncode == -9
    store = _table(tmp_path).data
    tp = TP(store.table.changelog_topic.get_topic_name(), 0)
    assert store.persisted_offset(tp) == 10
    assert all(store.get(key) == 1 for key in KEYS[:20])
    assert all(store.get(key) is None for key in KEYS[20:])


def test_a_stop_keeps_every_write(tmp_path):
    from faust.types import TP

    store = _table(tmp_path).data
    tp = TP(store.table.changelog_topic.get_topic_name(), 0)
    for key in KEYS:
        store[key] = 3
    store.set_persisted_offset(tp, 7)
    asyncio.run(store.stop())
    again = _table(tmp_path).data
    assert again.persisted_offset(tp) == 7 and all(again.get(key) == 3 for key in KEYS)
