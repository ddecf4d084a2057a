import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest
from fastavro.read import SchemaResolutionError
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.canonical import avro
from streams.rules.engagement import derive
from tests.rules.builders import line, milestone, project, quote, view

RELEASED = avro.SCHEMA_DIR / "released"


@pytest.mark.parametrize("event_type", sorted(avro.EVENT_TYPES))
def test_each_model_agrees_with_its_schema_file(event_type):
    assert avro.load_schema(event_type) == avro.schema_for(event_type), (
        f"schemas/{event_type}.avsc differs from the pydantic model; write it again with"
        " streams.canonical.avro.write_schemas() (and keep it BACKWARD compatible)"
    )


def _latest_release(event_type: str) -> Path:
    releases = sorted(RELEASED.glob(f"{event_type}.v*.avsc"), key=lambda p: int(p.stem.rsplit(".v", 1)[1]))
    assert releases, f"no released version of {event_type} in schemas/released"
    return releases[-1]


def _example(schema: dict) -> dict:
    """A record that fills every field of ``schema`` (nulls where allowed)."""
    from datetime import date, datetime
    from decimal import Decimal

    values = {"string": "x", "long": 1, "int": 1, "boolean": True}
    record = {}
    for field in schema["fields"]:
        t = field["type"]
        if isinstance(t, list):
            record[field["name"]] = None
        elif isinstance(t, dict):
            record[field["name"]] = {"decimal": Decimal("1.00"), "date": date(2026, 1, 1),
                                     "timestamp-micros": datetime(2026, 1, 1, tzinfo=UTC)}[t["logicalType"]]
        else:
            record[field["name"]] = values[t]
    return record


@pytest.mark.parametrize("event_type", sorted(avro.EVENT_TYPES))
def test_each_schema_stays_backward_compatible_with_its_last_release(event_type):
    """BACKWARD: a consumer on the current schema reads what a producer on the release wrote."""
    released = fastavro.parse_schema(json.loads(_latest_release(event_type).read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, released, _example(json.loads(_latest_release(event_type).read_text())))
    buf.seek(0)
    fastavro.schemaless_reader(buf, released, avro.parsed(event_type))  # raises SchemaResolutionError if not


def test_an_incompatible_change_is_caught():
    released = json.loads(_latest_release("contract").read_text())
    broken = dict(released, fields=released["fields"] + [{"name": "new_required", "type": "string"}])
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(released), _example(released))
    buf.seek(0)
    with pytest.raises(SchemaResolutionError):
        fastavro.schemaless_reader(buf, fastavro.parse_schema(released), fastavro.parse_schema(broken))


def test_canonical_events_round_trip_in_single_object_encoding():
    out = derive(view([quote(model="milestone")], [line(1, "milestone", price="5000", code="GO")], project=project(),
                      milestones=[milestone("GO")]))
    event = out.events["MS:Q-1:GO"]
    payload = avro.encode("billing_event", event)
    assert payload[:2] == b"\xc3\x01"
    event_type, record = avro.decode(payload)
    assert event_type == "billing_event"
    assert type(event).model_validate(record) == event
    contract_type, contract = avro.decode(avro.encode("contract", out.contract))
    assert contract_type == "contract" and contract["contract_value"] == out.contract.contract_value


def test_an_unknown_fingerprint_is_a_clear_error():
    with pytest.raises(avro.UnknownSchema, match="fingerprint"):
        avro.decode(b"\xc3\x01" + b"\x00" * 8 + b"\x02")


def _datum(avro_type):
    """Values of a field's (logical) Avro type, as a canonical model holds them."""
    if isinstance(avro_type, list):
        return st.none() | _datum(avro_type[1])
    if isinstance(avro_type, dict):
        kind = avro_type["logicalType"]
        if kind == "decimal":
            bound = 10 ** avro_type["precision"] - 1
            return st.integers(-bound, bound).map(lambda n: Decimal(n).scaleb(-avro_type["scale"]))
        if kind == "date":
            return st.dates()
        return st.datetimes(timezones=st.just(UTC), min_value=datetime(1, 1, 2))
    return {"string": st.text(), "long": st.integers(-2 ** 63, 2 ** 63 - 1), "boolean": st.booleans()}[avro_type]


def _records(event_type):
    fields = avro.load_schema(event_type)["fields"]
    return st.fixed_dictionaries({f["name"]: _datum(f["type"]) for f in fields})


@pytest.mark.parametrize("event_type", sorted(avro.EVENT_TYPES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_events_are_written_as_fastavro_writes_their_schema(event_type, data):
    record = data.draw(_records(event_type))
    model = avro.EVENT_TYPES[event_type].model_construct(**record)
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, fastavro.parse_schema(avro.load_schema(event_type)), record)
    payload = avro.encode(event_type, model)
    assert payload[10:] == reference.getvalue()
    assert avro.decode(payload) == (event_type, record)


def test_a_money_amount_finer_than_its_schema_is_refused():
    out = derive(view([quote(model="milestone")], [line(1, "milestone", price="5000", code="GO")], project=project(),
                      milestones=[milestone("GO")]))
    event = out.events["MS:Q-1:GO"].model_copy(update={"amount": Decimal("5000.001")})
    with pytest.raises(ValueError, match="[Ss]cale"):
        avro.encode("billing_event", event)
