"""``q2c worker``: create the topics, serve metrics, run the Faust worker."""
from __future__ import annotations

import gc
import os
import shutil
import sys

from streams.config import Settings

# The worker allocates a few objects per field of every change (decoded rows, models, table
# entries) and holds tens of thousands of them in its caches, which every full collection walks
# again. Collecting the youngest generation after 50,000 allocations instead of 700, and leaving
# what the start made (modules, Faust's services) out of the collections, took about a tenth off
# the CPU of ``bench.suite.transform`` (measured back to back). Cycles are still collected.
GC_THRESHOLDS = (50_000, 20, 100)


def run(settings: Settings) -> None:
    _metrics_across_processes(settings)
    from streams.agents import metrics
    from streams.agents.topics import ensure_topics

    ensure_topics(settings)
    (settings.home_dir / "faust").mkdir(parents=True, exist_ok=True)  # each worker's Faust datadir is below
    metrics.serve(settings.host, settings.metrics_port)
    from streams.agents.app import app

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.argv = ["q2c-worker", "worker", "--loglevel", "info",
                "--web-host", settings.host, "--web-port", str(settings.worker_web_port), "--web-bind", settings.host]
    app.main()


def _metrics_across_processes(settings: Settings) -> None:
    """prometheus_client's multiprocess mode, for the warehouse loader's process
    (``streams.agents.metrics``): set before prometheus_client is imported, in a directory of this
    worker's own, emptied at its start (what an earlier run counted is not counted again)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the worker chose its multiprocess mode")
    directory = settings.run_dir / f"metrics-{settings.metrics_port}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
