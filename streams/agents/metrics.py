"""Prometheus metrics of the worker and its health endpoint (``/metrics`` and ``/health``)."""
from __future__ import annotations

import json
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

CHANGES = Counter("q2c_source_changes_total", "Source change events read", ["table", "op"])
REJECTED = Counter("q2c_dead_letters_total", "Change events sent to the dead-letter topic", ["reason"])
SINK_ROWS = Counter("q2c_sink_rows_total", "Rows written to a sink", ["sink", "table"])
CANONICAL = Counter("q2c_canonical_events_total", "Canonical events published", ["event_type"])
BATCH_SECONDS = Histogram("q2c_batch_seconds", "Time to process one batch end to end",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BATCH_SIZE = Histogram("q2c_batch_events", "Change events per batch", buckets=(1, 10, 100, 500, 1000, 2000, 5000))
DEGRADED = Gauge("q2c_worker_degraded", "1 while a sink is failing and the worker waits to retry")
OPEN_TRANSACTIONS = Gauge("q2c_open_source_transactions", "Source transactions held until all their changes arrived")
INCOMPLETE_TRANSACTIONS = Counter("q2c_incomplete_transactions_total",
                                  "Source transactions released before all their changes arrived (waited too long)")
ENGAGEMENT_PARTITIONS = Gauge("q2c_engagement_partitions_owned",
                              "Partitions of q2c.changes.by-engagement this worker derives (scaled out)")
ENGAGEMENTS_DERIVED = Counter("q2c_engagements_derived_total",
                              "Engagements derived from a complete bundle by this worker (scaled out)")
FETCH_STALLS = Counter("q2c_fetch_stalls_total",
                       "Times the worker read nothing for 30 s with events left, outside a batch (streams/agents/fetch_watch.py)")
LAG = Gauge("q2c_source_lag_seconds", "Seconds between a source commit and its processing (last batch)")


class Health:
    def __init__(self) -> None:
        self.state = "starting"
        self.reason = ""
        self.since = time.time()

    def set(self, state: str, reason: str = "") -> None:
        if state != self.state:
            self.since = time.time()
        self.state, self.reason = state, reason
        DEGRADED.set(1 if state == "degraded" else 0)

    def as_dict(self) -> dict:
        return {"state": self.state, "reason": self.reason, "since": self.since}


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
    return [generate_latest()]


def serve(host: str, port: int) -> None:
    server = make_server(host, port, _app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
