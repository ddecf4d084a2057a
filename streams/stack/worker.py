"""The Faust worker process of the embedded stack."""
from __future__ import annotations

import sys
from collections.abc import Mapping

import httpx

from streams.stack.process import BackgroundPart, pid_of


class FaustWorker(BackgroundPart):
    name = "worker"
    label = "the Faust worker"
    stop_timeout = 30.0

    def __init__(self, settings, name: str = "worker", env: Mapping[str, str] | None = None) -> None:
        """``name`` and ``env`` (``Q2C_`` settings of its own: ports, ...) start a further worker
        beside the stack's own, as scaling out does."""
        self.name = name
        self.env = dict(env or {})
        super().__init__(settings)
        self.metrics_port = int(self.env.get("Q2C_METRICS_PORT", settings.metrics_port))

    @staticmethod
    def argv() -> list[str]:
        """What runs the worker (compose's ``worker`` service runs the same command)."""
        return [sys.executable, "-m", "streams.cli", "worker"]

    def start(self) -> None:
        self.launch(self.argv(),
                    {"worker metrics": self.metrics_port}, 120,
                    env={"Q2C_HOME": str(self.s.home_dir), "PYTHONUNBUFFERED": "1", **self.env})

    def health(self) -> dict:
        return httpx.get(f"http://{self.s.host}:{self.metrics_port}/health", timeout=3).json()

    def metric(self, name: str) -> float:
        """One unlabelled metric of this worker (0 when it has none yet)."""
        text = httpx.get(f"http://{self.s.host}:{self.metrics_port}/metrics", timeout=3).text
        return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0)

    def healthy(self) -> bool:
        return bool(pid_of(self.pidfile)) and self.health().get("state") in ("running", "degraded")
