"""The one commit protocol of every pipeline (capture, engagement, warehouse loader).

A batch's outputs leave in these named steps, always in this order:

1. ``publish``: its records queued on the producer (canonical events, audit records, routed
   bundle parts, dead letters);
2. ``sinks``: the sink databases written, each write retried until it goes through, while
   librdkafka sends the records queued;
3. ``deliver``: every record queued delivered (a flush), or an error;
4. ``tables``: the state tables' entries written (their changelog records queued);
5. ``changelog``: those changelog records delivered;
6. ``memory``: the in-memory state told that the batch is committed.

A failure at any step leaves the batch not done: it is processed again (``BatchHandler.handle``),
and every write before the failed step is idempotent, so doing it again writes nothing twice. The
tables record what the sinks wrote only after the sinks and Kafka have it, and the memory only
after the tables' changelogs have it: a restart rebuilds exactly what was committed. The consumer
offsets are committed after the batch returns (Faust's, or the loader's own commit).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

STEPS = ("publish", "sinks", "deliver", "tables", "changelog", "memory")


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Commit:
    """What one batch commits, step by step; a pipeline leaves out the steps it has no part in."""
    publish: Callable[[], None] = _nothing
    sinks: Callable[[], None] = _nothing
    tables: Callable[[], None] = _nothing
    memory: Callable[[], None] = _nothing


class CommitStepFailed(RuntimeError):
    """A step of a batch's commit failed: the batch is not done."""

    def __init__(self, step: str, cause: BaseException):
        super().__init__(f"commit step {step!r} failed: {type(cause).__name__}: {cause}")
        self.step = step


def _run(step: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:
        raise CommitStepFailed(step, exc) from exc


async def commit(batch: Commit, flush: Callable[[], None]) -> None:
    """Run ``batch``'s steps in the protocol's order; ``flush`` delivers what the producer holds
    (the ``deliver`` and ``changelog`` steps). Kafka and database work runs off the event loop;
    the tables and the memory are written on it, where the pipeline's state lives."""
    def send() -> None:
        _run("publish", batch.publish)
        _run("sinks", batch.sinks)
        _run("deliver", flush)

    await asyncio.to_thread(send)
    _run("tables", batch.tables)
    await asyncio.to_thread(_run, "changelog", flush)
    _run("memory", batch.memory)
