"""Run by test_wheel.py inside a fresh virtual environment outside the checkout, with the package
installed from its wheel: what an installed sync reads at run time is there. Prints one line of
JSON: where ``streams`` was imported from, the event types round-tripped, the schemas made."""
import json
import os
import sys
from datetime import UTC, date, datetime
from decimal import Decimal

import streams
from streams import resources
from streams.canonical import avro


def datum(field_type):
    """A value of a field's Avro type, as a canonical model holds it."""
    if isinstance(field_type, list):
        return datum(field_type[1])
    if isinstance(field_type, dict):
        logical = field_type.get("logicalType")
        if logical == "decimal":
            return Decimal(1).scaleb(-field_type["scale"])
        if logical == "date":
            return date(2026, 12, 4)
        if logical == "timestamp-micros":
            return datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
        return datum(field_type["type"])
    return {"string": "x", "long": 7, "int": 7, "boolean": True}[field_type]


round_tripped = []
for event_type, model in avro.EVENT_TYPES.items():
    fields = {f["name"]: datum(f["type"]) for f in avro.load_schema(event_type)["fields"]}
    payload = avro.encode(event_type, model.model_construct(**fields))
    decoded_type, record = avro.decode(payload)
    assert decoded_type == event_type and record == fields, (event_type, record, fields)
    round_tripped.append(event_type)

made = []
dsn = os.environ.get("Q2C_CHECK_WAREHOUSE_DSN")
if dsn:
    import psycopg

    from streams.sinks import audit, warehouse

    with psycopg.connect(dsn, autocommit=True) as conn:
        warehouse.ensure_schema(conn)
        audit.ensure_schema(conn)
        made = [r[0] for r in conn.execute("select table_schema || '.' || table_name from information_schema.views"
                                           " where table_schema = 'dw' order by 1").fetchall()]

print(json.dumps({"streams": streams.__file__, "schemas": str(resources.path("schemas")), "round_tripped": round_tripped,
                  "connectors": sorted(p.name for p in resources.path("connect").glob("*.json")),
                  "systems": sorted(p.name for p in resources.path("stack", "systems").glob("*.sql")), "views": made,
                  "python": sys.version.split()[0]}))
