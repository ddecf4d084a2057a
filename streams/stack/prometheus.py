"""Prometheus (Debian package) scraping the worker, and Kafka's and Connect's JMX exporters, with
the sync's alert rules loaded."""
from __future__ import annotations

import shutil

import httpx

from streams import resources
from streams.config import Settings
from streams.stack.process import BackgroundPart, StackError, pid_of

ALERT_RULES = resources.path("deploy", "prometheus", "alerts.yml")  # docker-compose.yml loads them too


class Prometheus(BackgroundPart):
    name = "prometheus"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.dir = settings.home_dir / "prometheus"
        self.config = self.dir / "prometheus.yml"

    def configure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        jobs = {"q2c-worker": self.s.metrics_port, "kafka": self.s.kafka_jmx_port, "connect": self.s.connect_jmx_port}
        self.config.write_text(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
            f"rule_files:\n  - {ALERT_RULES}\n"
            "scrape_configs:\n" + "".join(
                f"  - job_name: {job}\n    static_configs:\n      - targets: ['{self.s.host}:{port}']\n"
                for job, port in jobs.items())
        )

    def start(self) -> None:
        if pid_of(self.pidfile):
            return
        binary = shutil.which("prometheus")
        if not binary:
            raise StackError("Prometheus is not installed; `make run` installs Debian's prometheus package")
        self.configure()
        self.launch(
            [binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address={self.s.host}:{self.s.prometheus_port}", "--storage.tsdb.retention.time=7d"],
            {"Prometheus": self.s.prometheus_port}, 60,
        )

    def healthy(self) -> bool:
        return bool(pid_of(self.pidfile)) and httpx.get(f"{self.s.prometheus_url}/-/ready", timeout=3).status_code == 200

    def target_up(self) -> bool:
        """True once Prometheus has scraped the worker successfully."""
        data = httpx.get(f"{self.s.prometheus_url}/api/v1/query", params={"query": 'up{job="q2c-worker"}'}, timeout=3).json()
        return any(r["value"][1] == "1" for r in data["data"]["result"])
