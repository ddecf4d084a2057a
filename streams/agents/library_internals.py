"""Where the sync reads or sets Faust's and aiokafka's private attributes: here only.

Written against faust-streaming 0.15.3 and aiokafka 0.14.0 (pinned in pyproject.toml); at import
another installed version is logged, since any of these may have moved. What is relied on:

- aiokafka's ``AIOKafkaConsumer._fetch_max_wait_ms``, read by its fetcher when it is created: Faust
  passes no setting for it (``set_fetch_max_wait``);
- aiokafka's subscription state, ``consumer._subscription.subscription.assignment`` and each
  partition's ``_position``: where the fetcher is, without waiting for a position (``fetch_position``);
- aiokafka's ``Fetcher`` (``_fetcher``, ``_in_flight``, ``_pending_tasks``, ``_fetch_task``,
  ``_records``) and Faust's consumer thread (``Consumer._thread``): evidence when reading stalls;
- Faust's ``Consumer._read_offset`` and ``_committed_offset`` (what was read and committed per
  partition) and ``_buffered_partitions``, ``_active_partitions``, ``_paused_partitions``.

Beyond these, ``streams.agents.kafka_transport`` and ``streams.agents.table_store`` extend Faust by
subclassing (its aiokafka consumer, transport and RocksDB store), through the methods Faust
documents for drivers and stores; the tests of ``tests/agents`` run them against the real broker.
"""
from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

log = logging.getLogger(__name__)

WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def _check_versions() -> None:
    for package, expected in WRITTEN_FOR.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            continue
        if installed != expected:
            log.warning("%s %s is installed; streams/agents/library_internals.py was written for %s: "
                        "check what it relies on still holds", package, installed, expected)


_check_versions()


def set_fetch_max_wait(consumer: Any, ms: int) -> None:
    """How long a fetch waits for data at most (aiokafka's ``fetch_max_wait_ms``)."""
    consumer._fetch_max_wait_ms = ms


def fetch_position(consumer: Any, tp: Any) -> int | None:
    """Where aiokafka's fetcher is in ``tp`` (None when it has none), without waiting for one."""
    try:
        return consumer._subscription.subscription.assignment.state_value(tp)._position
    except AttributeError:  # another aiokafka, or not assigned yet
        return None


def read_position(consumer: Any, tp: Any) -> int:
    """The next offset Faust's consumer will read in ``tp``: after what it read, else what was
    committed, else the beginning."""
    read = consumer._read_offset.get(tp)
    return read + 1 if read is not None else (consumer._committed_offset.get(tp) or 0)


def partitions_held(consumer: Any) -> tuple[set, set, set]:
    """Faust's consumer: the partitions with records buffered, active and paused."""
    return set(consumer._buffered_partitions), set(consumer._active_partitions or ()), set(consumer._paused_partitions)


def consumer_thread_loop(consumer: Any) -> Any:
    """The event loop of Faust's consumer thread, if it runs one."""
    return getattr(getattr(consumer, "_thread", None), "thread_loop", None)


def fetcher_state(consumer: Any) -> list[str]:
    """aiokafka's fetcher, as lines: in flight, pending, and each partition's position and buffer."""
    fetcher = consumer._thread._ensure_consumer()._fetcher
    assignment = fetcher._subscriptions.subscription.assignment
    lines = [f"aiokafka fetcher: in flight={sorted(fetcher._in_flight)}, pending={len(fetcher._pending_tasks)}, "
             f"task done={fetcher._fetch_task.done()}"]
    for tp in sorted(assignment.tps):
        state = assignment.state_value(tp)
        lines.append(f"    {tp.topic}:{tp.partition} position={state._position} paused={state.paused} "
                     f"valid={state.has_valid_position} held={type(fetcher._records.get(tp)).__name__}")
    return lines
