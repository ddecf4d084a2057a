"""``q2c worker``: create the topics, serve metrics, build the Faust app and run its worker."""
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
    from streams.topics import ensure_topics

    ensure_topics(settings)
    (settings.home_dir / "faust").mkdir(parents=True, exist_ok=True)  # each worker's Faust datadir is below
    metrics.BUILD_INFO.labels(**build_info()).set(1)
    metrics.HEALTH.set("starting")
    for reason in metrics.DEAD_LETTER_REASONS:  # exported at 0 from the start: increase() sees the first one
        metrics.REJECTED.labels(reason)
    metrics.ENGAGEMENT_PARTITIONS.set(0)  # until a rebalance gives this worker some (scaled out)
    from streams.agents.platform_metrics import PlatformCollector

    metrics.add_collector(PlatformCollector(settings))
    metrics.serve(settings.bind, settings.metrics_port)
    import faust

    from streams.agents.app import build_app

    app = build_app(settings).app
    app.finalize()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    faust.Worker(app, loglevel="info").execute_from_commandline()


def build_info() -> dict[str, str]:
    """The labels of ``q2c_build_info``: the package's version, the git revision of a checkout
    (``unknown`` in an installed package), Python's and Faust's versions."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    from streams.config import PROJECT_ROOT

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    revision = "unknown"
    if (PROJECT_ROOT / ".git").exists():
        done = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=False)
        revision = done.stdout.strip() or "unknown"
    return {"version": of("q2c-sync"), "revision": revision, "python": platform.python_version(),
            "faust": of("faust-streaming")}


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
