"""Prometheus metrics of the worker, its health and its status page (``/metrics``, ``/health``,
``/status``), served by a small HTTP server of its own: nothing else (no table contents).

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

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _gauge(name: str, documentation: str) -> Gauge:
    """A gauge only the worker's own process sets: its most recent value, in multiprocess mode too."""
    return Gauge(name, documentation, multiprocess_mode="mostrecent")


CHANGES = Counter("q2c_source_changes_total", "Source change events read", ["table", "op"])
REJECTED = Counter("q2c_dead_letters_total", "Change events sent to the dead-letter topic", ["reason"])
DEAD_LETTER_REASONS = ("undecodable", "invalid_row", "processing_error")
SINK_ROWS = Counter("q2c_sink_rows_total", "Rows written to a sink", ["sink", "table"])
CANONICAL = Counter("q2c_canonical_events_total", "Canonical events published", ["event_type"])
AUDIT_RECORDS = Counter("q2c_audit_records_total", "Audit records of sink writes published (q2c.audit)")
BATCH_SECONDS = Histogram("q2c_batch_seconds", "Time to process one batch end to end",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BATCH_SIZE = Histogram("q2c_batch_events", "Change events per batch", buckets=(1, 10, 100, 500, 1000, 2000, 5000))
DEGRADED = _gauge("q2c_worker_degraded", "1 while a sink is failing and the worker waits to retry")
WORKER_STATES = ("starting", "running", "degraded", "stalled")
WORKER_STATE = Gauge("q2c_worker_state", "1 for the state the worker is in (what /health says)", ["state"],
                     multiprocess_mode="mostrecent")
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
BUILD_INFO = Gauge("q2c_build_info", "The running build: 1, its version in labels", ["version", "revision", "python", "faust"],
                   multiprocess_mode="mostrecent")
SYNC_LATENCY = Histogram(
    "q2c_sync_latency_seconds",
    "Source commit to sink commit: each source transaction of a batch, once the batch's writes to the sink are committed",
    ["sink"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
CONSUMER_LAG = Gauge("q2c_consumer_lag_records",
                     "Records on a partition not read yet, every 10 s: by the worker (group q2c), the warehouse loader (q2c-warehouse)",
                     ["group", "topic", "partition"], multiprocess_mode="mostrecent")
SOURCE_LAST_COMMIT = Gauge("q2c_source_last_commit_timestamp_seconds",
                           "Commit time of the newest change the worker applied, per source database", ["source"],
                           multiprocess_mode="mostrecent")
_COLLECTORS: list = []  # read at every scrape (``add_collector``)


def add_collector(collector) -> None:
    """A prometheus_client collector whose metrics ``/metrics`` serves from now on."""
    _COLLECTORS.append(collector)


def observe_latency(sinks, commits, now: float) -> None:
    """``commits``: the source commit times (epoch seconds) of a batch's transactions, one each;
    ``sinks``: the sinks the batch wrote to, all committed at ``now``."""
    for sink in sinks:
        histogram = SYNC_LATENCY.labels(sink)
        for committed in commits:
            histogram.observe(max(0.0, now - committed))


class Health:
    """The worker's state and, as parts of it, those of what runs beside it (the warehouse
    loader) and of its reading (``fetch_watch``): the worker's own state when it is not running,
    else the first part's that is not, with that part's reason. States: ``starting`` (until the
    tables are restored), ``running``, ``degraded`` (a sink failing: waiting to retry),
    ``stalled`` (events left to read and none read)."""

    WORKER = "worker"
    RUNNING = "running"

    def __init__(self) -> None:
        # not exported from here: every process that imports this module makes one (the worker
        # says ``starting`` itself, ``worker.run``)
        self.parts: dict[str, tuple[str, str, float]] = {self.WORKER: ("starting", "", time.time())}

    def set(self, state: str, reason: str = "", part: str = WORKER) -> None:
        before = self.parts.get(part)
        self.parts[part] = (state, reason, before[2] if before is not None and before[0] == state else time.time())
        overall = self.as_dict()["state"]
        DEGRADED.set(1 if overall == "degraded" else 0)
        for name in WORKER_STATES:
            WORKER_STATE.labels(name).set(1 if overall == name else 0)

    def as_dict(self) -> dict:
        state, reason, since = self.parts[self.WORKER]
        if state == self.RUNNING:
            other = next(((p, s, r, t) for p, (s, r, t) in self.parts.items() if s != self.RUNNING), None)
            if other is not None:  # the worker itself runs: another part does not
                part, state, reason, since = other
                reason = f"{part}: {reason}" if reason else part
        return {"state": state, "reason": reason, "since": since}

    def http_status(self) -> str:
        """200 only while running: a load balancer or an orchestrator's probe takes a worker that
        is starting, degraded or not reading out of service."""
        return "200 OK" if self.as_dict()["state"] == self.RUNNING else "503 Service Unavailable"


HEALTH = Health()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # no access log
        pass


def _app(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/health":
        body = json.dumps(HEALTH.as_dict()).encode()
        start_response(HEALTH.http_status(), [("Content-Type", "application/json")])
        return [body]
    if path == "/metrics":
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [exposition()]
    if path in ("/status", "/"):
        from streams.agents.status_page import render

        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [render(HEALTH, exposition().decode()).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found: /metrics, /health and /status are served here\n"]


def exposition() -> bytes:
    """Every metric in Prometheus's text format: the processes' added up in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(REGISTRY)
    for collector in _COLLECTORS:
        registry.register(collector)
    return generate_latest(registry)


def serve(host: str, port: int):
    """Serve /metrics, /health and /status on ``host:port`` in a thread; returns the server."""
    server = make_server(host, port, _app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
