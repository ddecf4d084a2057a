"""The one retry policy of every write that must not fail (sinks, dead letters): exponential
backoff with full jitter, reporting the wait."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")
log = logging.getLogger(__name__)

TRANSIENT = (psycopg.OperationalError, psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure,
             psycopg.errors.DeadlockDetected, psycopg.errors.QueryCanceled)


def with_backoff(what: str, fn: Callable[[], T], on_wait: Callable[[bool], None] = lambda waiting: None,
                 base: float = 0.5, cap: float = 30.0, give_up_after: float | None = None,
                 transient: tuple[type[BaseException], ...] = TRANSIENT) -> T:
    """Run ``fn`` until it succeeds; ``transient`` errors (by default a database's) wait and retry
    (never a crash loop). ``on_wait(True)`` is called while waiting (the worker reports itself
    degraded), ``on_wait(False)`` once it succeeded again."""
    attempt = 0
    started = time.monotonic()
    while True:
        try:
            result = fn()
            if attempt:
                on_wait(False)
                log.warning("%s succeeded after %d retries", what, attempt)
            return result
        except transient as exc:
            attempt += 1
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise
            on_wait(True)
            delay = random.uniform(0, min(cap, base * 2 ** min(attempt, 16)))
            log.warning("%s failed (%s: %s); retry %d in %.1fs", what, type(exc).__name__, str(exc).strip()[:200], attempt, delay)
            time.sleep(delay)
