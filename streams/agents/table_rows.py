"""The mirror's and the ledger's stores over the worker's Faust tables.

On the RocksDB table store (the default) rows stay on local disk and are read on demand through
a bounded cache of decoded rows (``CachedStore``); writes go to the table (its local database and
its changelog) at once. Faust's in-memory store (``Q2C_TABLE_STORE=memory``) cannot scan by
prefix, so there every entry is decoded onto the heap when the worker starts and written through
to the table.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streams.agents.changelog import Changelog
from streams.state.store import CachedStore, Codec, MemoryStore, Store


class TableBackend:
    """A Faust table kept in ``streams.agents.table_store``: documents by key, prefix scans.
    Writes go to the local database and their changelog records to ``changelog``
    (``streams.agents.changelog``: through confluent-kafka, delivered by the batch's flush)."""

    def __init__(self, table: Any, changelog: Changelog):
        self.table, self.changelog = table, changelog
        self.store = table.data

    def get(self, key: str) -> Any | None:
        return self.store.get(key)

    def put(self, key: str, doc: Any) -> None:
        self.changelog.put(self.table, key, doc)

    def delete(self, key: str) -> None:
        self.changelog.put(self.table, key, None)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        return self.store.scan(prefix)


class HeapTable(MemoryStore):
    """Every entry of a table decoded on the heap, written through to the table."""

    def __init__(self, table: Any, codec: Codec):
        super().__init__()
        self.table, self.codec = table, codec
        for key, doc in table.items():
            if doc is not None:
                super().put(key, codec.decode(key, doc))

    def put(self, key: str, value: Any) -> None:
        self.table[key] = self.codec.encode(key, value)
        super().put(key, value)

    def delete(self, key: str) -> None:
        if key in self.table:
            del self.table[key]
        super().delete(key)


def table_rows(table: Any, codec: Codec, cache_rows: int, changelog: Changelog) -> Store:
    """The store of one table: on demand when its store scans by prefix, else on the heap."""
    if hasattr(table.data, "scan") and hasattr(table.data, "write"):
        return CachedStore(TableBackend(table, changelog), codec, cache_rows)
    return HeapTable(table, codec)
