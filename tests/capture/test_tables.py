"""The one registry of source tables agrees with the canonical models, the warehouse and the
Debezium connectors: a table added in one place and forgotten in another fails here."""
import json
from pathlib import Path

from streams.canonical.avro import EVENT_TYPES
from streams.capture.tables import EVENT_TYPE_OF_TABLE, TABLES
from streams.sinks.warehouse import KEYS
from streams.topics import source_topics

CONNECT = Path(__file__).parents[2] / "connect"


def test_every_table_maps_to_the_canonical_model_of_its_event_type_and_is_keyed_by_model_fields():
    assert len(set(EVENT_TYPE_OF_TABLE.values())) == len(TABLES)  # one event type per table
    for mapping in TABLES.values():
        assert EVENT_TYPES[mapping.event_type] is mapping.model, mapping.table_id
        assert set(mapping.key) <= set(mapping.model.model_fields), mapping.table_id
        assert KEYS[mapping.event_type] == mapping.key


def test_every_mapped_table_is_captured_by_its_databases_connector_and_read_by_the_worker():
    for mapping in TABLES.values():
        db = mapping.table_id.split(".")[0]
        config = json.loads((CONNECT / f"{db}.json").read_text())["config"]
        assert mapping.table_id in config["table.include.list"].split(","), mapping.table_id
        assert f"{config['topic.prefix']}.{mapping.table_id}" in source_topics()
