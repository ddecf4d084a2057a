"""``docker-compose.yml`` comes up as written: it is valid, every file it mounts or builds from is
in the project, its images are pinned to the versions the embedded stack runs, the connectors
carry what Debezium needs, the worker runs what the embedded stack runs, and its staging
databases are made (and prepared) by its own scripts on a real PostgreSQL.

There is no Docker engine here: the containers are not started. What they would run is run for
real where it can be: the databases' init script and ``q2c sources prepare`` with the compose
file's own environment, against a fresh PostgreSQL cluster of Debian's binaries."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest
import yaml

from streams import connectors
from streams.config import Settings
from streams.sources import SIGNAL_TABLE, captured_tables
from streams.stack import jvm
from streams.stack.postgres import Postgres
from streams.stack.worker import FaustWorker

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"Q2C_PG_PASSWORD": "staging-owner", "Q2C_CAPTURE_PASSWORD": "staging-capture",
           "Q2C_SYNC_PASSWORD": "staging-sync", "Q2C_READER_PASSWORD": "staging-reader"}


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as ``docker-compose config`` resolves it (variables filled in)."""
    done = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True,
                          text=True, env={**os.environ, **SECRETS}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_it_is_refused_without_its_secrets():
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    done = subprocess.run(["docker-compose", "config", "-q"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode != 0 and "set Q2C_PG_PASSWORD" in done.stderr


def test_every_file_it_mounts_or_builds_from_is_in_the_project(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):  # a bind mount (named volumes have no slash)
                assert Path(source).exists(), f"{name} mounts {source}, which is not in the project"
        if "build" in service:
            context = Path(service["build"]["context"])
            dockerfile = context / service["build"].get("dockerfile", "Dockerfile")
            assert dockerfile.exists(), name
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (context / source).exists(), f"{dockerfile.name} copies {source}, which is missing"
    rules = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["rule_files"]
    assert all((ROOT / "deploy/prometheus" / rule).exists() for rule in rules)
    checked = subprocess.run(["promtool", "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # its rules too


def test_images_are_pinned_to_what_the_embedded_stack_runs(compose):
    images = {name: s["image"] for name, s in compose["services"].items() if "image" in s}
    for name, image in images.items():
        assert re.search(r":[vV]?\d[\w.\-]*$", image), f"{name}: {image} is not pinned to a version"
    pom = ET.parse(ROOT / "streams/stack/pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = {p.tag.split("}")[1]: p.text for p in pom.find("m:properties", ns)}
    assert images["kafka"] == f"apache/kafka:{version['kafka.version']}"
    assert images["connect"] == f"quay.io/debezium/connect:{version['debezium.version']}"
    agent = re.search(r"jmx_prometheus_javaagent-([\d.]+)\.jar", " ".join(compose["services"]["jmx-agent"]["command"]))
    assert agent and agent.group(1) == jvm.JMX_EXPORTER.rsplit(":", 1)[1]


REQUIRED = ("connector.class", "plugin.name", "database.hostname", "database.port", "database.user",
            "database.password", "database.dbname", "topic.prefix", "table.include.list", "slot.name",
            "publication.name", "signal.data.collection", "notification.enabled.channels", "notification.sink.topic.name")


def test_each_connector_carries_what_debezium_needs_and_connect_has_its_variables(compose):
    connect_env = compose["services"]["connect"]["environment"]
    assert connect_env["CONNECT_CONFIG_PROVIDERS"] == "env"
    slots = set()
    for path in connectors.connector_files():
        config = json.loads(path.read_text())["config"]
        missing = [key for key in REQUIRED if not config.get(key)]
        assert not missing, f"{path.name} lacks {missing}"
        assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
        assert config["signal.data.collection"] == SIGNAL_TABLE
        assert config["publication.name"] == f"q2c_{config['database.dbname']}"  # what `sources prepare` makes
        slots.add(config["slot.name"])
        for variable in re.findall(r"\$\{env:(\w+)\}", json.dumps(config)):
            assert variable in connect_env, f"{path.name} reads {variable}, which connect's environment lacks"
    assert len(slots) == len(connectors.connector_files())  # a slot each


def test_the_worker_runs_what_the_embedded_stack_runs_as_the_sync_role(compose):
    worker = compose["services"]["worker"]
    argv = FaustWorker.argv()
    assert worker["command"][0] == "q2c" and worker["command"][1:] == argv[argv.index("streams.cli") + 1:]
    settings = {f"Q2C_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        unknown = [k for k in service.get("environment", {}) if k.startswith("Q2C_") and k not in settings
                   and k not in SECRETS and k not in ("Q2C_CAPTURE_USER", "Q2C_PG_HOST", "Q2C_PG_PORT", "Q2C_DATABASES")]
        assert not unknown, f"{name} sets {unknown}, which no setting reads"
    env = worker["environment"]
    for db in ("crm", "psa", "finance", "erp", "warehouse"):
        assert env[f"Q2C_{db.upper()}_DSN"].startswith("postgresql://q2c_sync:"), db  # never the owner
        assert env[f"Q2C_{db.upper()}_DSN"].endswith(f"/{db}")
    assert env["Q2C_BIND"] == "0.0.0.0"  # Prometheus scrapes it from its own container
    scraped = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    worker_job = next(job for job in scraped if job["job_name"] == "q2c-worker")
    assert worker_job["dns_sd_configs"][0]["port"] == Settings.model_fields["metrics_port"].default
    assert "volumes" not in worker  # each replica its own RocksDB tables: no shared volume under --scale
    home = env["Q2C_HOME"]
    assert f"mkdir -p {home} && chown nobody {home}" in (ROOT / "Dockerfile").read_text()  # the image's user writes it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.stack
def test_the_staging_databases_are_made_and_prepared_by_compose_as_written(compose):
    """The init script of the ``sources`` and ``erp`` services, then ``sources-prepare``'s command
    with its environment, on a fresh cluster standing in for both servers."""
    home = Path(tempfile.mkdtemp(prefix="q2c-compose-"))
    owner = compose["services"]["sources"]["environment"]
    settings = Settings(home=home, pg_port=_free_port(), pg_superuser=owner["POSTGRES_USER"],
                        pg_password=owner["POSTGRES_PASSWORD"])
    server = Postgres(settings)
    server.init()
    server.start()
    try:
        for name in ("sources", "erp"):
            service = compose["services"][name]
            script = next(v.split(":")[0] for v in service["volumes"] if "docker-entrypoint-initdb.d" in v)
            systems = next(v.split(":")[0] for v in service["volumes"] if ":/q2c/systems" in v)
            env = {**os.environ, **service["environment"], "Q2C_SYSTEMS_DIR": systems, "PGHOST": "127.0.0.1",
                   "PGPORT": str(settings.pg_port), "PGPASSWORD": owner["POSTGRES_PASSWORD"]}
            for _ in range(2):  # idempotent
                done = subprocess.run(["sh", script], capture_output=True, text=True, env=env)
                assert done.returncode == 0, done.stderr
        prepare = compose["services"]["sources-prepare"]
        env = {k: re.sub(r"@(sources|erp):5432/", f"@127.0.0.1:{settings.pg_port}/", str(v))
               for k, v in prepare["environment"].items()}
        env["Q2C_HOME"] = str(home / "prepare")
        assert prepare["command"][0] == "q2c"
        done = subprocess.run([str(Path(sys.executable).parent / "q2c"), *prepare["command"][1:]],
                              capture_output=True, text=True, env={**os.environ, **env})
        assert done.returncode == 0, done.stdout + done.stderr
        with psycopg.connect(settings.dsn("psa")) as conn:
            published = {r[0] for r in conn.execute(
                "select schemaname || '.' || tablename from pg_publication_tables where pubname = 'q2c_psa'")}
            assert published == {*captured_tables()["psa"], SIGNAL_TABLE}
        sync_dsn = compose["services"]["worker"]["environment"]["Q2C_ERP_DSN"]
        with psycopg.connect(re.sub(r"@erp:5432/", f"@127.0.0.1:{settings.pg_port}/", sync_dsn)) as conn:
            assert conn.execute("select current_user").fetchone()[0] == "q2c_sync"
            conn.execute("select count(*) from erp_inbound.contract")  # the worker's role reads what it writes
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
