"""The Faust worker process of the embedded stack."""
from __future__ import annotations

import sys

import httpx

from streams.stack.process import BackgroundPart, pid_of


class FaustWorker(BackgroundPart):
    name = "worker"
    label = "the Faust worker"
    stop_timeout = 30.0

    def start(self) -> None:
        self.launch([sys.executable, "-m", "streams.cli", "worker"],
                    {"worker metrics": self.s.metrics_port, "worker web": self.s.worker_web_port}, 120,
                    env={"Q2C_HOME": str(self.s.home_dir), "PYTHONUNBUFFERED": "1"})

    def health(self) -> dict:
        return httpx.get(f"http://{self.s.host}:{self.s.metrics_port}/health", timeout=3).json()

    def healthy(self) -> bool:
        return bool(pid_of(self.pidfile)) and self.health().get("state") in ("running", "degraded")
