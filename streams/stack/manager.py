"""``q2c up``, ``down`` and ``status``: the embedded stack as one unit, parts in start order."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from streams import connectors
from streams.config import Settings
from streams.stack.jvm import ConnectWorker, KafkaBroker, fetch_jars
from streams.stack.postgres import Postgres
from streams.stack.process import wait_until
from streams.stack.prometheus import Prometheus
from streams.stack.worker import FaustWorker


@dataclass
class PartStatus:
    name: str
    healthy: bool
    detail: str = ""


class Stack:
    def __init__(self, settings: Settings):
        self.s = settings
        self.postgres = Postgres(settings)
        self.kafka = KafkaBroker(settings)
        self.connect = ConnectWorker(settings)
        self.worker = FaustWorker(settings)
        self.prometheus = Prometheus(settings)

    @property
    def parts(self):
        return [self.postgres, self.kafka, self.connect, self.worker, self.prometheus]

    def up(self, say=print, with_worker: bool = True, starting=lambda label: None) -> dict[str, float]:
        """Start every part and return once each is healthy; returns seconds per part.
        ``starting(label)`` is told of each part before it starts (a progress display)."""
        timings: dict[str, float] = {}
        self.s.home_dir.mkdir(parents=True, exist_ok=True)

        def step(label, fn):
            starting(label)
            t0 = time.monotonic()
            fn()
            timings[label] = round(time.monotonic() - t0, 1)
            say(f"  {label:<12} ok ({timings[label]}s)")

        step("jars", lambda: fetch_jars(self.s))
        step("postgres", lambda: (self.postgres.init(), self.postgres.start(), self.postgres.create_databases()))
        step("kafka", self.kafka.start)
        step("connect", lambda: (
            self.connect.start(), self.connect.register(connector_files()),
            wait_until("every connector streaming from its replication slot", lambda: not self.postgres.inactive_slots(),
                       120, self.connect.log)))
        if with_worker:
            step("worker", self.worker.start)
        step("prometheus", self.prometheus.start)
        return timings

    def down(self) -> list[str]:
        stopped = []
        for part in reversed(self.parts):
            if part.stop():
                stopped.append(part.name)
        return stopped

    def status(self) -> list[PartStatus]:
        result = []
        for part in self.parts:
            try:
                ok = bool(part.healthy())
                detail = ""
                if part is self.worker and ok:
                    detail = self.worker.health().get("state", "")
                if part is self.connect and ok and (idle := self.postgres.inactive_slots()):
                    ok, detail = False, f"not streaming: {', '.join(idle)}"
            except Exception as exc:  # noqa: BLE001 - status reports, never raises
                ok, detail = False, f"{type(exc).__name__}: {exc}"[:200]
            result.append(PartStatus(part.name, ok, detail))
        return result


def connector_files() -> list[Path]:
    return connectors.connector_files()
