"""The embedded stack: every part started for real, healthy, and observable."""
import json
import os
import subprocess
import sys

import httpx
import pytest

from streams.config import Settings
from streams.stack.postgres import Postgres
from streams.stack.process import StackError
from streams.testing.firm import eventually
from tests.commands import q2c


@pytest.mark.stack
def test_every_part_is_healthy_and_status_says_so(stack):
    result = q2c("status", "--json")
    parts = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(parts) == {"postgres", "kafka", "connect", "worker", "prometheus"}
    assert all(p["healthy"] for p in parts.values()), parts
    assert parts["worker"]["detail"] == "running"
    assert result.returncode == 0


@pytest.mark.stack
def test_the_source_databases_hold_the_client_schemas_with_logical_wal(stack):
    from streams.testing.firm import Db

    crm = Db(stack.s.dsn("crm"))
    assert crm.one("show wal_level")["wal_level"] == "logical"
    tables = {r["t"] for r in crm.rows("select table_schema || '.' || table_name as t from information_schema.tables"
                                       " where table_schema = 'crm'")}
    assert tables == {"crm.account", "crm.opportunity", "crm.quote", "crm.quote_line", "crm.account_financials"}
    erp = Db(stack.s.dsn("erp"))
    assert erp.one("select count(*) as n from information_schema.tables where table_schema = 'erp_inbound'")["n"] == 5
    assert Db(stack.s.dsn("warehouse")).one("select 1 as ok")["ok"] == 1


@pytest.mark.stack
def test_prometheus_scrapes_the_worker(stack):
    assert "q2c_batch_seconds" in httpx.get(stack.s.metrics_url).text
    eventually(stack.prometheus.target_up, timeout=60, what="Prometheus scraping the worker")


@pytest.mark.stack
def test_kafka_connect_and_debezium_are_observed_through_the_jmx_exporter(stack):
    s = stack.s

    def debezium_observed() -> bool:
        # a connector task that was restarted (a fault test restarts Connect or PostgreSQL) has no
        # streaming metrics until it streams again, a few seconds later
        lines = httpx.get(f"http://{s.host}:{s.connect_jmx_port}/metrics", timeout=10).text.splitlines()
        for server in ("crm", "psa", "finance"):
            for metric in ("debezium_postgres_millisecondsbehindsource", "debezium_postgres_queueremainingcapacity"):
                assert any(line.startswith(f'{metric}{{context="streaming",server="{server}"') for line in lines), (metric, server)
            assert f'debezium_postgres_connected{{context="streaming",server="{server}"}} 1.0' in lines, server
        return True

    eventually(debezium_observed, timeout=90, what="Debezium's streaming metrics through the JMX exporter")
    kafka = httpx.get(f"http://{s.host}:{s.kafka_jmx_port}/metrics", timeout=10).text
    assert "kafka_server_brokertopicmetrics_messagesin_total" in kafka

    def scraped(job: str) -> bool:
        data = httpx.get(f"{s.prometheus_url}/api/v1/query", params={"query": f'up{{job="{job}"}}'}, timeout=3).json()
        return any(r["value"][1] == "1" for r in data["data"]["result"])

    for job in ("kafka", "connect", "q2c-worker"):
        eventually(lambda j=job: scraped(j), timeout=60, what=f"Prometheus scraping {job}")


@pytest.mark.stack
def test_connectors_run_with_exact_decimals_and_heartbeats(stack):
    for name in ("q2c-crm", "q2c-psa", "q2c-finance"):
        config = httpx.get(f"{stack.s.connect_url}/connectors/{name}/config").json()
        assert config["decimal.handling.mode"] == "string"
        assert int(config["heartbeat.interval.ms"]) > 0
        assert config["plugin.name"] == "pgoutput"
        assert "${env:" in config["database.password"]  # the secret never sits in the committed JSON
        assert stack.connect.connector_running(name)


def test_env_prints_every_address(tmp_path):
    result = q2c("env", Q2C_HOME=str(tmp_path), Q2C_PG_PORT="21234")
    exported = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    for key in ("Q2C_STACK_CRM_DSN", "Q2C_STACK_PSA_DSN", "Q2C_STACK_FINANCE_DSN", "Q2C_STACK_ERP_DSN",
                "Q2C_STACK_WAREHOUSE_DSN", "Q2C_STACK_KAFKA", "Q2C_STACK_CONNECT_URL", "Q2C_STACK_METRICS_URL",
                "Q2C_STACK_STATUS_URL", "Q2C_STACK_PROMETHEUS_URL"):
        assert key in exported
    assert ":21234/crm" in exported["Q2C_STACK_CRM_DSN"]
    # evaluated in a shell, it overrides no setting: the worker keeps its role, the tests their stack
    evaluated = {k: v.strip("'") for k, v in exported.items()}
    with_env = subprocess.run([sys.executable, "-c", "from streams.config import Settings; print(Settings().model_dump_json())"],
                              capture_output=True, text=True, env={**os.environ, "Q2C_HOME": str(tmp_path), **evaluated})
    without = subprocess.run([sys.executable, "-c", "from streams.config import Settings; print(Settings().model_dump_json())"],
                             capture_output=True, text=True, env={**os.environ, "Q2C_HOME": str(tmp_path)})
    assert with_env.stdout == without.stdout and with_env.stdout


@pytest.mark.stack
def test_a_port_already_taken_is_a_clear_error_naming_it(stack, tmp_path):
    clash = Settings(home=tmp_path / "other", pg_port=stack.s.pg_port)
    postgres = Postgres(clash)
    postgres.init()
    with pytest.raises(StackError, match=f"port 127.0.0.1:{stack.s.pg_port} is already taken"):
        postgres.start()
