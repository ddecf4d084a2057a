"""The Faust app: one agent reads every Debezium topic in batches and hands each batch to the
``Pipeline`` (decode → mirror → rules → canonical topics → sinks → ledger).

State lives in changelog-backed tables: ``q2c-mirror`` (every source row, guarded by LSN),
``q2c-ledger`` (what was written per engagement, invoice and account) and
``q2c-open-transactions`` (changes of source transactions not yet complete).
"""
from __future__ import annotations

import faust

from streams.agents.pipeline import CapturePipeline
from streams.agents.topics import APP_ID, LEDGER, MIRROR, OPEN_TRANSACTIONS, canonical_topics, source_topics
from streams.agents.warehouse_loader import WarehouseLoader
from streams.config import faust_credentials, load

settings = load()

app = faust.App(
    APP_ID,
    broker=f"kafka://{settings.bootstrap}",
    broker_credentials=faust_credentials(settings),
    store="memory://",
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=1,
    processing_guarantee="at_least_once",
    web_bind=settings.host,
    web_host=settings.host,
    web_port=settings.worker_web_port,
    datadir=str(settings.home_dir / "faust"),
    broker_max_poll_records=settings.batch_size,
    consumer_auto_offset_reset="earliest",
    stream_wait_empty=False,
)

changes_topic = app.topic(*source_topics(), key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
mirror_table, ledger_table, open_transactions_table = (
    app.Table(name, default=None, partitions=settings.topic_partitions, use_partitioner=True)
    for name in (MIRROR, LEDGER, OPEN_TRANSACTIONS))

pipeline = CapturePipeline(settings, mirror_table, ledger_table, open_transactions_table)
loader = WarehouseLoader(settings)

canonical_topic = app.topic(*canonical_topics(), key_type=bytes, value_type=bytes,
                            key_serializer="raw", value_serializer="raw")


@app.agent(changes_topic)
async def capture(stream):
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        await pipeline.handle(events)


@app.agent(canonical_topic)
async def load_warehouse(stream):
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        await loader.handle(events)


@app.timer(interval=2.0)
async def release_overdue_transactions() -> None:
    """A source transaction that stays incomplete is applied as it is Q2C_TRANSACTION_WAIT_S after
    its first change, even when no new event arrives to trigger a batch."""
    await pipeline.release_overdue()


@app.timer(interval=1.0)
async def watch_recovery() -> None:
    """Once Faust has restored the tables from their changelogs, rebuild the mirror and report
    the worker running (before that, its health says ``starting``)."""
    recovery = app.tables.recovery
    if recovery.completed.is_set() and not recovery.in_recovery and not pipeline.loaded:
        pipeline.ready()
