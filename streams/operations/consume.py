"""``q2c consume TOPIC``: decode canonical Avro events (or anything else) as JSON lines."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from streams.canonical import avro
from streams.canonical.wire import CanonicalWire
from streams.config import Settings
from streams.kafka_io import read_all


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def lines(settings: Settings, topic: str, follow: bool = False, limit: int | None = None) -> Iterator[str]:
    wire = CanonicalWire.from_settings(settings)
    for count, msg in enumerate(read_all(settings, topic, follow=follow)):
        if limit is not None and count >= limit:
            return
        raw = msg.value()
        record: object
        event_type = None
        try:
            event_type, record = wire.decode(raw, msg.topic()) if raw else (None, None)
        except avro.UnknownSchema:
            try:
                record = json.loads(raw)
            except ValueError:
                record = raw.decode("utf-8", "replace")
        yield json.dumps({
            "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
            "key": msg.key().decode("utf-8", "replace") if msg.key() else None,
            "type": event_type, "value": record,
        }, default=_default)
