"""The warehouse agent's batch: canonical events (Avro) → the star schema in ``warehouse``."""
from __future__ import annotations

import asyncio
from typing import Any

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.canonical import avro
from streams.canonical.wire import CanonicalWire
from streams.sinks import warehouse


class WarehouseLoader(BatchHandler):
    schema_ready = False

    def __init__(self, settings):
        super().__init__(settings)
        self.wire = CanonicalWire.from_settings(settings)

    async def process(self, events: list[Any]) -> None:
        loads: list[warehouse.Load] = []
        letters = []
        for event in events:
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in (event.headers or {}).items()}
            event_type = headers.get("q2c.type")
            try:
                record = None
                if event.value is not None:
                    event_type, record = self.wire.decode(event.value, event.message.topic)
            except avro.UnknownSchema as exc:
                letters.append((event, "undecodable", str(exc), None))
                continue
            if event_type:
                loads.append(warehouse.Load(event_type, record, headers.get("q2c.ref"), headers.get("q2c.contract")))
        if letters:
            await asyncio.to_thread(self.dead_letter, letters)
        if loads:
            await asyncio.to_thread(self.write_retrying, "warehouse load", "warehouse", self._write(loads))
            metrics.SINK_ROWS.labels("warehouse", "all").inc(len(loads))

    def _write(self, loads):
        def write(conn):
            if not self.schema_ready:
                warehouse.ensure_schema(conn)
                self.schema_ready = True
            warehouse.write(conn, loads)
        return write
