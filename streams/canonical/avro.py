"""Avro for canonical events: the schemas in ``schemas/`` are the registry.

This module is the registry-free encoding: Avro single-object encoding (``C3 01`` + CRC-64-AVRO
fingerprint + body). ``streams.canonical.wire`` chooses between it and Confluent's wire format.
"""
from __future__ import annotations

import copy
import io
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.write import LOGICAL_WRITERS

from streams import resources
from streams.canonical import models as m

SCHEMA_DIR = resources.path("schemas")
NAMESPACE = "io.q2c.canonical"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"

# canonical event type → (model, topic)
EVENT_TYPES: dict[str, type[m.Canonical]] = {
    "client": m.Client, "quote": m.Quote, "quote_line": m.QuoteLine, "resource": m.Resource,
    "project": m.Project, "billing_milestone": m.BillingMilestone, "assignment": m.Assignment,
    "time_entry": m.TimeEntry, "expense_item": m.ExpenseItem, "customer": m.Customer,
    "fiscal_period": m.FiscalPeriod, "tax_rate": m.TaxRate, "invoice": m.Invoice,
    "invoice_line": m.InvoiceLine, "payment": m.Payment,
    "contract": m.Contract, "schedule_item": m.ScheduleItem, "billing_event": m.BillingEvent,
    "project_cost": m.ProjectCost, "receivable": m.Receivable,
}
MONEY_SCALE = {"rate_pct": 3, "tax_rate_pct": 3}


def topic_of(event_type: str) -> str:
    return f"q2c.canonical.{event_type}"


def _avro_type(name: str, annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return ["null", _avro_type(name, inner[0])]
    if origin is typing.Literal:
        return "string"
    if annotation is str:
        return "string"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "long"
    if annotation is Decimal:
        return {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": MONEY_SCALE.get(name, 2)}
    if annotation is date:
        return {"type": "int", "logicalType": "date"}
    if annotation is datetime:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if isinstance(annotation, str):  # postponed annotations resolve through the model
        raise TypeError(f"unresolved annotation {annotation!r} for {name}")
    raise TypeError(f"no Avro type for {name}: {annotation!r}")


def schema_for(event_type: str) -> dict:
    """The Avro schema a canonical model implies (what ``schemas/<type>.avsc`` must equal)."""
    model = EVENT_TYPES[event_type]
    hints = typing.get_type_hints(model, include_extras=False)
    fields = []
    for name, _info in model.model_fields.items():
        avro = _avro_type(name, hints[name])
        field = {"name": name, "type": avro}
        if isinstance(avro, list):
            field["default"] = None
        fields.append(field)
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else event_type
    return {"type": "record", "name": model.__name__, "namespace": NAMESPACE, "doc": doc, "fields": fields}


@cache
def load_schema(event_type: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{event_type}.avsc").read_text())


@cache
def parsed(event_type: str):
    return fastavro.parse_schema(load_schema(event_type))


@cache
def _fingerprint(event_type: str) -> bytes:
    """The schema's CRC-64-AVRO fingerprint as the single-object header carries it: the 64-bit
    value little-endian, which is the byte order of fastavro's hex digest already."""
    canonical = to_parsing_canonical_form(parsed(event_type))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@cache
def _by_fingerprint() -> dict[bytes, str]:
    """Header fingerprint → event type. Versions before this one wrote the fingerprint's bytes
    reversed (big-endian), which no other Avro implementation can resolve; messages they wrote
    stay on the topics, so both orders are read. Only the right one is written."""
    types = [t for t in EVENT_TYPES if (SCHEMA_DIR / f"{t}.avsc").exists()]
    return {**{_fingerprint(t)[::-1]: t for t in types}, **{_fingerprint(t): t for t in types}}


Prepare = Callable[[Any], Any]


def _logical_writer(avro: Any) -> tuple[Any, Callable[[Any, dict], Any] | None]:
    """A type without its logical type, and fastavro's writer of that logical type (None: none)."""
    if isinstance(avro, dict) and "logicalType" in avro:
        writer = LOGICAL_WRITERS.get(f"{avro['type']}-{avro['logicalType']}")
        if writer is not None and avro["logicalType"] == "decimal":
            return avro["type"], _remembered(writer)
        if writer is not None:
            return avro["type"], writer
    return avro, None


DECIMALS_KEPT = 50_000  # written decimals remembered by a field type


def _remembered(writer: Callable[[Any, dict], Any]) -> Callable[[Any, dict], Any]:
    """fastavro's decimal writer, its bytes remembered by value: a decimal's bytes cost about
    1.7 µs (``Decimal.as_tuple`` and its digits), and the amounts, hours and rates of a firm's
    events repeat. Equal decimals have equal bytes at a schema's scale, and the writer is given
    the value without trailing zeros, so what a value writes, or the error it raises (finer than
    the scale), does not depend on which of its equal forms came first."""
    kept: dict[Decimal, bytes] = {}

    def write(value: Any, schema: dict) -> Any:
        if type(value) is not Decimal:
            return writer(value, schema)
        out = kept.get(value)
        if out is None:
            out = writer(value.normalize(), schema)
            if len(kept) >= DECIMALS_KEPT:
                kept.clear()
            kept[value] = out
        return out
    return write


def _physical(avro: Any) -> tuple[Any, Prepare | None]:
    """A field's type without its logical type, and what turns a value into that type's datum
    (fastavro's own logical writers; for ``["null", T]``, with the union branch named in
    fastavro's tuple notation): one function a field, as these run for every field of every event."""
    physical, writer = _logical_writer(avro)
    if writer is not None:
        return physical, lambda value: writer(value, avro)
    if isinstance(avro, list) and len(avro) == 2 and avro[0] == "null":
        branch, writer = _logical_writer(avro[1])
        if isinstance(branch, str):  # named branches (records, enums) are left to fastavro
            inner = avro[1]
            if writer is None:
                return ["null", branch], lambda value: None if value is None else (branch, value)
            return ["null", branch], lambda value: None if value is None else (branch, writer(value, inner))
    return avro, None


@cache
def prepared_writer(event_type: str) -> tuple[Any, tuple[tuple[str, Prepare], ...]]:
    """The schema as fastavro writes it fastest, and each field's preparation.

    The bytes are those of the schema in ``schemas/``: a logical type changes what a value means,
    not how it is written. Its values are prepared here, once a field, with fastavro's logical
    writers, and union branches are named (tuple notation), because fastavro otherwise matches a
    value against each branch of a union by validating it, which made a billing event (five
    optional fields, two of them decimals) cost about 30 µs to write."""
    schema = copy.deepcopy(load_schema(event_type))
    prepared = []
    for field in schema["fields"]:
        field["type"], prepare = _physical(field["type"])
        if prepare is not None:
            prepared.append((field["name"], prepare))
    return fastavro.parse_schema(schema), tuple(prepared)


def encode(event_type: str, model: m.Canonical) -> bytes:
    schema, prepared = prepared_writer(event_type)
    record = dict(model.__dict__)  # the field values, as model_dump gives them for these flat models
    for name, prepare in prepared:
        record[name] = prepare(record[name])
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC)
    buf.write(_fingerprint(event_type))
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


class UnknownSchema(ValueError):
    pass


def decode(payload: bytes) -> tuple[str, dict]:
    """(event type, record) from single-object encoded Avro."""
    if payload[:2] == SINGLE_OBJECT_MAGIC:
        event_type = _by_fingerprint().get(payload[2:10])
        if event_type is None:
            raise UnknownSchema(f"no schema in schemas/ has fingerprint {payload[2:10].hex()}")
        return event_type, fastavro.schemaless_reader(io.BytesIO(payload[10:]), parsed(event_type), parsed(event_type))
    raise UnknownSchema("neither Avro single-object encoding nor Confluent wire format")


def write_schemas(directory: Path = SCHEMA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for event_type in EVENT_TYPES:
        (directory / f"{event_type}.avsc").write_text(json.dumps(schema_for(event_type), indent=2) + "\n")
