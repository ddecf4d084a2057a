"""Canonical events in Confluent's wire format when a schema registry is configured.

MOCK: no Confluent-compatible schema registry can run on this machine (Confluent's is not on Maven
Central, Apicurio's Quarkus app is published only as a container image, Karapace is not on PyPI),
so these tests use confluent-kafka's own in-process registry (``mock://``). Everything else here is
real: confluent-kafka's serializer and deserializer, and the framing on the wire.
"""
import json
import struct
from decimal import Decimal

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.canonical import avro
from streams.canonical.wire import CanonicalWire, registry_client
from streams.config import Settings
from streams.rules.engagement import derive
from tests.rules.builders import line, milestone, project, quote, view


@pytest.fixture
def outputs():
    return derive(view([quote(model="milestone")], [line(1, "milestone", price="5000.01", code="GO")],
                       project=project(), milestones=[milestone("GO")]))


@pytest.fixture
def registry():
    return SchemaRegistryClient.new_client({"url": "mock://q2c-tests"})


def test_with_a_registry_events_are_written_in_confluent_wire_format(outputs, registry):
    wire = CanonicalWire(registry)
    event = outputs.events["MS:Q-1:GO"]
    payload = wire.encode("billing_event", event)

    assert wire.format == "confluent"
    assert payload[:1] == b"\x00"
    schema_id = struct.unpack(">I", payload[1:5])[0]
    registered = registry.get_latest_version("q2c.canonical.billing_event-value")
    assert registered.schema_id == schema_id
    assert json.loads(registered.schema.schema_str) == avro.load_schema("billing_event")

    event_type, record = CanonicalWire(registry).decode(payload, "q2c.canonical.billing_event")
    assert event_type == "billing_event"
    assert type(event).model_validate(record) == event
    assert record["amount"] == Decimal("5000.01") and isinstance(record["amount"], Decimal)


def test_a_reader_with_a_registry_still_reads_single_object_events(outputs, registry):
    """A deployment that turns a registry on keeps reading what was written before it."""
    old = CanonicalWire().encode("contract", outputs.contract)
    assert old[:2] == b"\xc3\x01"
    assert CanonicalWire(registry).decode(old, "q2c.canonical.contract") == ("contract", outputs.contract.model_dump())


def test_confluent_framing_without_a_registry_is_a_clear_error(outputs, registry):
    payload = CanonicalWire(registry).encode("contract", outputs.contract)
    with pytest.raises(avro.UnknownSchema, match="no schema registry is configured"):
        CanonicalWire().decode(payload, "q2c.canonical.contract")


def test_an_unknown_schema_id_is_a_clear_error(registry):
    with pytest.raises(avro.UnknownSchema, match="not readable through the registry"):
        CanonicalWire(registry).decode(b"\x00" + struct.pack(">I", 4242) + b"\x02", "q2c.canonical.contract")


def test_without_auto_registration_schemas_must_be_registered_first(outputs, registry):
    wire = CanonicalWire(registry, auto_register=False)
    with pytest.raises(SchemaRegistryError, match="Schema Not Found"):
        wire.encode("contract", outputs.contract)
    ids = wire.register_all()
    assert set(ids) == {f"q2c.canonical.{t}-value" for t in avro.EVENT_TYPES}
    payload = CanonicalWire(registry, auto_register=False).encode("contract", outputs.contract)
    assert struct.unpack(">I", payload[1:5])[0] == ids["q2c.canonical.contract-value"]


def test_settings_choose_the_format():
    assert registry_client(Settings()) is None
    assert CanonicalWire.from_settings(Settings()).format == "single-object"
    configured = Settings(schema_registry_url="mock://configured", schema_registry_basic_auth="user:secret")
    assert CanonicalWire.from_settings(configured).format == "confluent"
    assert "secret" not in repr(configured)


def test_q2c_schemas_register_needs_a_registry_and_lists_every_subject(monkeypatch):
    from click.testing import CliRunner

    from streams.cli import main

    monkeypatch.delenv("Q2C_SCHEMA_REGISTRY_URL", raising=False)
    refused = CliRunner().invoke(main, ["schemas", "register"])
    assert refused.exit_code == 2 and "no schema registry is configured" in refused.output  # a usage error
    monkeypatch.setenv("Q2C_SCHEMA_REGISTRY_URL", "mock://cli")
    done = CliRunner().invoke(main, ["schemas", "register"])
    assert done.exit_code == 0, done.output
    subjects = {line.split("\t")[0] for line in done.output.splitlines()}
    assert subjects == {f"q2c.canonical.{t}-value" for t in avro.EVENT_TYPES}
