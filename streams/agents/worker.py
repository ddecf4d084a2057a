"""``q2c worker``: create the topics, serve metrics, run the Faust worker."""
from __future__ import annotations

import sys

from streams.config import Settings


def run(settings: Settings) -> None:
    from streams.agents import metrics
    from streams.agents.topics import ensure_topics

    ensure_topics(settings)
    (settings.home_dir / "faust").mkdir(parents=True, exist_ok=True)  # each worker's Faust datadir is below
    metrics.serve(settings.host, settings.metrics_port)
    from streams.agents.app import app

    sys.argv = ["q2c-worker", "worker", "--loglevel", "info",
                "--web-host", settings.host, "--web-port", str(settings.worker_web_port), "--web-bind", settings.host]
    app.main()
