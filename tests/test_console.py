"""How ``q2c`` ends: an error is one line on stderr, never a traceback, and its exit code says
what kind of failure it was (``streams.console``)."""
import click
import httpx
import psycopg
from click.testing import CliRunner
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams import console
from streams.connectors import ConnectorError
from tests.commands import q2c


def test_each_kind_of_failure_has_its_code():
    assert console.exit_code(psycopg.OperationalError("connection refused")) == console.UNREACHABLE
    assert console.exit_code(httpx.ConnectError("refused")) == console.UNREACHABLE
    assert console.exit_code(KafkaException(KafkaError(KafkaError._TRANSPORT))) == console.UNREACHABLE
    assert console.exit_code(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))) == console.REFUSED
    assert console.exit_code(ConnectorError("task 0 failed")) == console.REFUSED
    assert console.exit_code(SchemaRegistryError(409, 409, "incompatible schema")) == console.REFUSED
    assert console.exit_code(KeyError("x")) == console.UNEXPECTED


def test_a_defect_is_one_line_that_says_how_to_see_more():
    @click.group(cls=console.CommandGroup)
    def main():
        pass

    @main.command()
    def broken():
        raise KeyError("no such row")

    done = CliRunner().invoke(main, ["broken"])
    assert done.exit_code == console.UNEXPECTED
    assert done.output == "error: 'no such row' (a defect: Q2C_DEBUG=1 shows where)\n"


def test_kafka_unreachable_is_one_line_and_code_4():
    done = q2c("dlq", "list", Q2C_KAFKA_BOOTSTRAP="127.0.0.1:9")
    assert done.returncode == console.UNREACHABLE
    assert done.stderr == "error: Kafka at 127.0.0.1:9 unreachable: Failed to get metadata: Local: Broker transport failure\n"


def test_postgresql_unreachable_is_one_line_and_code_4():
    done = q2c("reconcile", Q2C_PG_PORT="9", Q2C_CRM_DSN="postgresql://q2c@127.0.0.1:9/crm")
    assert done.returncode == console.UNREACHABLE and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: connection failed") and done.stderr.count("\n") == 1


def test_usage_errors_are_code_2():
    assert q2c("replay").returncode == console.USAGE
    refused = q2c("backfill", "crm.account_financials")
    assert refused.returncode == console.USAGE and "not captured: crm.account_financials" in refused.stderr
    assert q2c("no-such-command").returncode == console.USAGE
