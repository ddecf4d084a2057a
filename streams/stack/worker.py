"""The Faust worker process of the embedded stack."""
from __future__ import annotations

import sys

import httpx

from streams.config import Settings
from streams.stack.process import pid_of, require_free_port, spawn, stop, wait_until


class FaustWorker:
    name = "worker"

    def __init__(self, settings: Settings):
        self.s = settings
        self.pidfile = settings.run_dir / "worker.pid"
        self.log = settings.log_dir / "worker.log"

    def start(self) -> None:
        if pid_of(self.pidfile):
            return
        require_free_port("worker metrics", self.s.host, self.s.metrics_port)
        require_free_port("worker web", self.s.host, self.s.worker_web_port)
        spawn(
            [sys.executable, "-m", "streams.cli", "worker"],
            self.pidfile, self.log,
            env={"Q2C_HOME": str(self.s.home_dir), "PYTHONUNBUFFERED": "1"},
        )
        wait_until("the Faust worker", self.healthy, 120, self.log)

    def stop(self) -> bool:
        return stop(self.pidfile, timeout=30)

    def health(self) -> dict:
        return httpx.get(f"http://{self.s.host}:{self.s.metrics_port}/health", timeout=3).json()

    def healthy(self) -> bool:
        return bool(pid_of(self.pidfile)) and self.health().get("state") in ("running", "degraded")
