"""The mirror's and the ledger's stores over the worker's Faust tables.

On the RocksDB table store (the default) rows stay on local disk and are read on demand through
a bounded cache of decoded rows (``CachedStore``); writes go to the table (its local database and
its changelog) at once. Faust's in-memory store (``Q2C_TABLE_STORE=memory``) cannot scan by
prefix, so there every entry is decoded onto the heap when the worker starts and written through
to the table.
"""
from __future__ import annotations

from typing import Any, Iterator

from streams.state.store import CachedStore, Codec, MemoryStore, Store


class TableBackend:
    """A Faust table kept in ``streams.agents.table_store``: documents by key, prefix scans.
    Writes go to the local database and, with the partition the store gives the key, to the
    changelog (what ``table[key] = doc`` does, without Faust hashing every key again)."""

    def __init__(self, table: Any):
        self.table = table
        self.store = table.data

    def get(self, key: str) -> Any | None:
        return self.store.get(key)

    def put(self, key: str, doc: Any) -> None:
        self.store[key] = doc
        encoded, partition = self.store.placement(key)
        self.table.send_changelog(partition, encoded, doc, key_serializer="raw")

    def delete(self, key: str) -> None:
        if key in self.store:  # a missing key would cost a needless tombstone in the changelog
            del self.store[key]
            encoded, partition = self.store.placement(key)
            self.table.send_changelog(partition, encoded, None, key_serializer="raw", value_serializer="raw")

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


def table_rows(table: Any, codec: Codec, cache_rows: int) -> Store:
    """The store of one table: on demand when its store scans by prefix, else on the heap."""
    if hasattr(table.data, "scan") and hasattr(table.data, "placement"):
        return CachedStore(TableBackend(table), codec, cache_rows)
    return HeapTable(table, codec)
