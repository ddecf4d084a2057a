"""The Faust app: one agent reads every Debezium topic in batches and hands each batch to the
``CapturePipeline`` (decode → mirror → rules → canonical topics → sinks → ledger); the warehouse
loader reads the canonical topics beside it, outside Faust, in a process of its own
(``warehouse_loader.py``, ``loader_process.py``).

State lives in changelog-backed tables: ``q2c-mirror`` (every source row, guarded by LSN),
``q2c-ledger`` (what was written per engagement, invoice and account) and
``q2c-open-transactions`` (changes of source transactions not yet complete).

Scaled out (``Q2C_ENGAGEMENT_PARTITIONS`` > 0), the worker that owns the source topics routes each
engagement to a partition of ``q2c.changes.by-engagement`` (``q2c-routes`` remembers what was
sent), and on every worker the ``derive_engagements`` agent derives the engagements of the
partitions it owns from copies of their rows (``q2c-engagement-rows``) against their ledger
(``q2c-engagement-ledger``). See docs/design.md, "Scaling".

``build_app(settings)`` makes all of it for one worker; nothing is made at import.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from streams.agents import metrics
from streams.agents.engagement_pipeline import EngagementPipeline
from streams.agents.fetch_watch import FetchWatch, watch
from streams.agents.kafka_transport import App
from streams.agents.loader_process import LoaderProcess
from streams.agents.pipeline import CapturePipeline
from streams.agents.table_store import table_options
from streams.config import Settings, faust_credentials
from streams.state.keys import contract_of
from streams.state.routing import engagement_partition
from streams.topics import BY_ENGAGEMENT, ENGAGEMENT_LEDGER, ENGAGEMENT_ROWS, LEDGER, MIRROR, OPEN_TRANSACTIONS, ROUTES, source_topics


@dataclass(frozen=True)
class Sync:
    """One worker's Faust app and what its agents, timers and signals drive."""
    app: App
    mirror_table: Any
    ledger_table: Any
    pipeline: CapturePipeline
    engagements: EngagementPipeline | None


def build_app(settings: Settings) -> Sync:
    """The Faust app of a worker run with ``settings``: its topics, tables, agents and timers."""
    scaled_out = settings.engagement_partitions > 0
    app = App(  # faust.App with the seek fix of kafka_transport.py
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=faust_credentials(settings),
        store="keyed-rocksdb://" if settings.table_store == "rocksdb" else "memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        processing_guarantee="at_least_once",
        # Faust's web server answers /table/<name>/<key>/ with a table's entries (source rows:
        # names, e-mails, cost rates) to anyone who reaches it, and the sync needs none of its
        # views; /metrics, /health and /status are served by ``metrics.serve`` alone.
        web_enabled=False,
        datadir=str(settings.home_dir / "faust" / f"{settings.app_id}-{settings.worker_web_port}"),  # one per worker
        broker_max_poll_records=settings.batch_size,
        consumer_auto_offset_reset="earliest",
        # Static membership (KIP-345): a worker restarted after a crash rejoins under the same id at
        # once and gets its partitions back without waiting for its old session to expire; the
        # session is short so that another worker takes over a dead one's partitions soon.
        consumer_group_instance_id=f"{settings.app_id}-{socket.gethostname()}-{settings.worker_web_port}",
        broker_session_timeout=settings.session_timeout_s,
        stream_wait_empty=False,
        # room for a few fetches while a batch is processed before Faust pauses a partition
        stream_buffer_maxsize=max(4096, 4 * settings.batch_size),
    )

    changes_topic = app.topic(*source_topics(), key_type=bytes, value_type=bytes,
                              key_serializer="raw", value_serializer="raw")
    # the mirror's and the ledger's values are the bytes their codecs write (streams.state.mirror, .ledger)
    mirror_table, ledger_table = (
        app.Table(name, default=None, partitions=settings.topic_partitions, use_partitioner=True, value_type=bytes,
                  options=table_options())
        for name in (MIRROR, LEDGER))
    open_transactions_table = app.Table(OPEN_TRANSACTIONS, default=None, partitions=settings.topic_partitions,
                                        use_partitioner=True, options=table_options())
    routes_table = (app.Table(ROUTES, default=None, partitions=settings.topic_partitions, use_partitioner=True,
                              options=table_options())
                    if scaled_out else None)

    pipeline = CapturePipeline(settings, mirror_table, ledger_table, open_transactions_table, routes_table)
    loader = LoaderProcess(settings)

    def owned_partitions(topic: str) -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}

    @app.agent(changes_topic)
    async def capture(stream):
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await pipeline.handle(events)

    @app.task
    async def start_warehouse_loader() -> None:
        """The warehouse loader reads the canonical topics in a process of its own (loader_process.py)."""
        await asyncio.to_thread(loader.start)

    @app.on_before_shutdown.connect
    async def stop_warehouse_loader(sender, **kwargs) -> None:
        await asyncio.to_thread(loader.stop)

    engagements = None
    if scaled_out:
        by_engagement = app.topic(BY_ENGAGEMENT, key_type=bytes, value_type=bytes, key_serializer="raw",
                                  value_serializer="raw", partitions=settings.engagement_partitions)
        engagement_rows_table, engagement_ledger_table = (
            app.Table(name, default=None, partitions=settings.engagement_partitions,
                      options=table_options(lambda key: engagement_partition(contract_of(key), settings.engagement_partitions)))
            for name in (ENGAGEMENT_ROWS, ENGAGEMENT_LEDGER))
        engagements = EngagementPipeline(settings, engagement_rows_table, engagement_ledger_table,
                                         lambda: owned_partitions(BY_ENGAGEMENT))

        @app.agent(by_engagement)
        async def derive_engagements(stream):
            async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
                await engagements.handle(events)

    @app.on_rebalance_complete.connect
    async def rebuild_state(sender, **kwargs) -> None:
        """Faust has restored the tables of the partitions this worker owns now: the in-memory state is
        rebuilt from them before the next batch (the worker reading the source topics may have
        changed); report running."""
        pipeline.rebalanced(bool(owned_partitions(source_topics()[0])))
        if engagements is not None:
            engagements.rebalanced()
        metrics.HEALTH.set("running")

    @app.timer(interval=2.0)
    async def release_overdue_transactions() -> None:
        """A source transaction that stays incomplete is applied as it is Q2C_TRANSACTION_WAIT_S after
        its first change, even when no new event arrives to trigger a batch."""
        await pipeline.release_overdue()

    fetch_watch = FetchWatch()

    @app.timer(interval=10.0)
    async def watch_fetching() -> None:
        """Report (and undo) a stop of Faust's fetching while events are left: fetch_watch.py."""
        try:
            processing = pipeline.lock.locked() or (engagements is not None and engagements.lock.locked())
            await watch(app, fetch_watch, time.monotonic(), processing)
        except Exception:  # noqa: BLE001 - a diagnostic must never take the worker down
            logging.getLogger(__name__).exception("the fetch watch failed")

    return Sync(app, mirror_table, ledger_table, pipeline, engagements)
