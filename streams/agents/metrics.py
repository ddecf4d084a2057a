"""Prometheus metrics of the worker and its health endpoint (``/metrics`` and ``/health``).

The warehouse loader runs in a process of its own (``loader_process.py``). With
``PROMETHEUS_MULTIPROC_DIR`` set, as the worker sets it before this module is first imported,
prometheus_client keeps each process's values in files there and ``/metrics`` adds the processes
up (prometheus_client's multiprocess mode); the gauges are the worker's own (its most recent value).
The loader's health reaches ``/health`` as a part of the worker's (``Health.set(..., part=)``).
"""
from __future__ import annotations

import json
import os
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
                               multiprocess)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _gauge(name: str, documentation: str) -> Gauge:
    """A gauge only the worker's own process sets: its most recent value, in multiprocess mode too."""
    return Gauge(name, documentation, multiprocess_mode="mostrecent")


CHANGES = Counter("q2c_source_changes_total", "Source change events read", ["table", "op"])
REJECTED = Counter("q2c_dead_letters_total", "Change events sent to the dead-letter topic", ["reason"])
SINK_ROWS = Counter("q2c_sink_rows_total", "Rows written to a sink", ["sink", "table"])
CANONICAL = Counter("q2c_canonical_events_total", "Canonical events published", ["event_type"])
BATCH_SECONDS = Histogram("q2c_batch_seconds", "Time to process one batch end to end",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BATCH_SIZE = Histogram("q2c_batch_events", "Change events per batch", buckets=(1, 10, 100, 500, 1000, 2000, 5000))
DEGRADED = _gauge("q2c_worker_degraded", "1 while a sink is failing and the worker waits to retry")
OPEN_TRANSACTIONS = _gauge("q2c_open_source_transactions", "Source transactions held until all their changes arrived")
INCOMPLETE_TRANSACTIONS = Counter("q2c_incomplete_transactions_total",
                                  "Source transactions released before all their changes arrived (waited too long)")
ENGAGEMENT_PARTITIONS = _gauge("q2c_engagement_partitions_owned",
                               "Partitions of q2c.changes.by-engagement this worker derives (scaled out)")
ENGAGEMENTS_DERIVED = Counter("q2c_engagements_derived_total",
                              "Engagements derived from a complete bundle by this worker (scaled out)")
FETCH_STALLS = Counter("q2c_fetch_stalls_total",
                       "Times the worker read nothing for 30 s with events left, outside a batch (streams/agents/fetch_watch.py)")
LAG = _gauge("q2c_source_lag_seconds", "Seconds between a source commit and its processing (last batch)")


class Health:
    """The worker's state and, as parts of it, those of what runs beside it (the warehouse
    loader): degraded while any part is, with that part's reason; else the worker's own."""

    WORKER = "worker"

    def __init__(self) -> None:
        self.parts: dict[str, tuple[str, str, float]] = {self.WORKER: ("starting", "", time.time())}

    def set(self, state: str, reason: str = "", part: str = WORKER) -> None:
        before = self.parts.get(part)
        self.parts[part] = (state, reason, before[2] if before is not None and before[0] == state else time.time())
        DEGRADED.set(1 if self.as_dict()["state"] == "degraded" else 0)

    def as_dict(self) -> dict:
        state, reason, since = self.parts[self.WORKER]
        degraded = [(p, r, t) for p, (s, r, t) in self.parts.items() if s == "degraded"]
        if degraded and state != "degraded":  # the worker itself is not: another part is
            part, reason, since = degraded[0]
            state, reason = "degraded", f"{part}: {reason}"
        return {"state": state, "reason": reason, "since": since}


HEALTH = Health()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # no access log
        pass


def _app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        body = json.dumps(HEALTH.as_dict()).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [exposition()]


def exposition() -> bytes:
    """Every metric in Prometheus's text format: the processes' added up in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def serve(host: str, port: int) -> None:
    server = make_server(host, port, _app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
