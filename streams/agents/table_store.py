"""Faust's RocksDB table store, keeping each key in the local database of the partition its
changelog record goes to.

This module is where the sync reaches into faust-streaming's store internals, and why: its
RocksDB store (``faust/stores/rocksdb.py``) picks the local database of a write from the
*current event's* partition (``_set``: ``assert event is not None``), and reads of a table that
Faust does not partition by key from the current event's partition too. The sync writes its
tables from batches: with no current event (a timer's batch) the write fails, and with one it
would be the partition of whichever event the batch ended on. Every partition's local database
must hold exactly the keys of its changelog partition, or recovery, rebalancing and a restart
from local state would be wrong. (Kafka Streams never meets this: a store belongs to a task, and
a task to one partition.) Here the key decides, as it does for the changelog record:

- tables Faust partitions by key (``use_partitioner``): the producer's default partitioner
  (murmur2 of the key bytes, Kafka's own), over the table's partitions;
- tables the sync partitions itself (the scaled-out engagement tables, written with an explicit
  partition): the ``partition_of`` function given in the table's options.

Overridden: ``get``, ``_set``, ``_get``, ``_del``, ``_contains`` (the partition of a key is ours, so
Faust's ``_key_index``, an LRU cache of where keys were last written that only its own versions
of these read, is left empty), ``_dbs_for_actives`` (kept between rebalances), ``_open_for_partition``,
``stop`` and ``revoke_partitions`` (no write-ahead log, below); added: ``write`` (an entry set in
its partition's database, returning its changelog record's bytes: ``changelog.py``), ``scan``, the entries under a key
prefix in key order (RocksDB keeps keys sorted; the mirror's indexes and an engagement's ledger
rows are read as prefixes), ``checkpoint`` (below). Everything else (recovery from the changelog by
message partition, persisted offsets, iteration over the active partitions) is Faust's. Registered
as ``keyed-rocksdb://`` through the ``faust.stores`` entry point (pyproject.toml), Faust's
documented way to add a store.

The local databases keep no write-ahead log; the changelog is the log, as in Kafka Streams. With
the log, every put was a ``write(2)`` of its own while holding the interpreter lock: profiled
(py-spy ``--gil --native``) while the worker caught up on 30,210 changes beside Kafka and
PostgreSQL, ``PosixWritableFile::Append`` → ``write`` was 180 of 575 samples, about 7.5 µs a put.
Without it, what a crash (``kill -9``) loses is what was written since the memtables were last
flushed to disk, and it loses it as a whole: a database holds a prefix of its writes, the offset
Faust persists after a batch's changelog records were delivered included, so recovery reads the
changelog again from an earlier offset and nothing is missing. ``checkpoint`` flushes the memtables
at most every ``FLUSH_EVERY_S`` after a batch, which bounds what a restart reads again; a stop and
a revoked partition flush theirs before Faust lets go of the database.
"""
from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from faust.stores import rocksdb
from rocksdict import WriteOptions

# Bounded memory: these are per local database (a table's partition); Faust's defaults (a 2 GB
# block cache, 64 MB write buffers) are sized for a few large tables on a big host.
OPTIONS = {
    "block_cache_size": 32 * 1024 * 1024,
    "block_cache_compressed_size": 8 * 1024 * 1024,
    "write_buffer_size": 16 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 32 * 1024 * 1024,
    "driver": "rocksdict",
}

FLUSH_EVERY_S = 2.0  # at most this often the memtables are written to disk after a batch

PARTITION_OF = "partition_of"
PARTITION_CACHE = 100_000  # keys whose partition is remembered


def table_options(partition_of: Callable[[Any], int] | None = None) -> dict[str, Any]:
    """The options of a table kept in this store (``partition_of``: the partition of a table key,
    as the app writes it, for tables written with an explicit partition)."""
    options: dict[str, Any] = dict(OPTIONS)
    if partition_of is not None:
        options[PARTITION_OF] = partition_of
    return options


class Store(rocksdb.Store):
    def __init__(self, url: Any, app: Any, table: Any, *, options: dict | None = None, **kwargs: Any) -> None:
        options = dict(options or OPTIONS)
        self._partition_of: Callable[[Any], int] | None = options.pop(PARTITION_OF, None)
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[bytes, int] = {}
        super().__init__(url, app, table, options=options, **kwargs)
        self._all: list[int] = []  # the table's partitions, known once its topic is
        self._rebalances = 0
        self._actives: tuple[Any, list[Any]] = (None, [])  # (what they were read at, the active databases)
        self._flushed_at = time.monotonic()

    def _open_for_partition(self, partition: int) -> Any:
        db = super()._open_for_partition(partition)
        no_log = WriteOptions()
        no_log.disable_wal = True  # every write of this handle, Faust's own (recovery, offsets) included
        db.set_write_options(no_log)
        return db

    def checkpoint(self, every: float = FLUSH_EVERY_S) -> None:
        """After a batch's changelog records were delivered and their offsets persisted: start
        writing the memtables to disk if the last time is ``every`` seconds ago (without waiting:
        a crash before it ends keeps the previous state, which recovery reads forward from)."""
        now = time.monotonic()
        if now - self._flushed_at >= every:
            self._flushed_at = now
            for db in self._dbs.values():
                db.flush(False)

    async def stop(self) -> None:
        for db in self._dbs.values():
            db.flush(True)
        await super().stop()

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        for tp in tps:
            db = self._dbs.get(tp.partition) if tp.topic in table.changelog_topic.topics else None
            if db is not None:
                db.flush(True)
        super().revoke_partitions(table, tps)

    def _partition(self, key: bytes) -> int:
        partition = self._partitions.get(key)
        if partition is None:
            if self._partition_of is not None:
                partition = self._partition_of(self._decode_key(key))
            else:
                if not self._all:
                    self._all = list(range(self.table.partitions or self.app.conf.topic_partitions))
                # murmur2 in Python costs a few microseconds a key, and the same keys come back often
                partition = 0 if len(self._all) == 1 else self._partitioner(key, self._all, self._all)
            if len(self._partitions) >= PARTITION_CACHE:
                self._partitions.clear()
            self._partitions[key] = partition
        return partition

    def placement(self, key: Any) -> tuple[bytes, int]:
        """A table key as its changelog record and local database keep it, and its partition."""
        encoded = self._encode_key(key)
        return encoded, self._partition(encoded)

    def _encode_key(self, key: Any) -> bytes:
        if type(key) is str and self.table.key_serializer == "json":
            # json.dumps's form of a string (non-ASCII escaped), by the function it calls for one: the
            # bytes the tables have always held, and a key must keep its bytes (and so its partition)
            # across versions. Faust's codec writes the same, and would write non-ASCII as UTF-8 if
            # orjson were installed (it is not a dependency: docs/design.md).
            return encode_basestring_ascii(key).encode()
        return super()._encode_key(key)

    def write(self, key: Any, value: Any | None) -> tuple[bytes, bytes | None, int]:
        """Set (None: remove) one entry in its partition's local database; returns what its
        changelog record carries: the key's and the value's bytes, and the partition."""
        encoded, partition = self.placement(key)
        db = self._db_for_partition(partition)
        if value is None:
            db.delete(encoded)
            return encoded, None, partition
        value_bytes = value if type(value) is bytes else self._encode_value(value)  # Faust passes bytes through as well
        db.put(encoded, value_bytes)
        return encoded, value_bytes, partition

    def get(self, key: Any, default: Any = None) -> Any:
        """Faust's store is a ``MutableMapping`` without a ``get`` of its own: ``Mapping.get`` raised
        and caught a KeyError for every key not there (3.4 % of the worker's Python time at 500
        approvals a second)."""
        value = self._get(self._encode_key(key))
        return default if value is None else self._decode_value(value)

    def _set(self, key: bytes, value: bytes | None) -> None:
        self._db_for_partition(self._partition(key)).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        return self._db_for_partition(self._partition(key)).get(key)

    def _del(self, key: bytes) -> None:
        self._db_for_partition(self._partition(key)).delete(key)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0) -> None:
        # counted before and after: a scan while Faust opens the partitions' databases (it awaits)
        # must not keep what it found for after the rebalance
        self._rebalances += 1
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        self._rebalances += 1

    def _dbs_for_actives(self) -> list[Any]:
        """Faust's, kept until the next rebalance or local database: Faust builds the assignor's
        set of active partitions anew at each call, and the mirror scans several times a change."""
        at = (self._rebalances, tuple(self._dbs.items()))
        if self._actives[0] != at:
            self._actives = (at, list(super()._dbs_for_actives()))
        return self._actives[1]

    def scan(self, prefix: str) -> Iterator[tuple[Any, Any]]:
        """(key, value) of every entry of the active partitions whose key starts with ``prefix``
        (a string key), in the order of the encoded keys."""
        start = self._encode_key(prefix)
        if start.endswith(b'"'):  # a JSON string: the encoded prefix is its encoding without the closing quote
            start = start[:-1]
        runs = [self._scan_db(db, start) for db in self._dbs_for_actives()]
        entries = runs[0] if len(runs) == 1 else heapq.merge(*runs, key=lambda item: item[0])
        for key, value in entries:
            yield self._decode_key(key), self._decode_value(value)

    def _scan_db(self, db: Any, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in db.items(from_key=start):
            if not key.startswith(start):
                return
            if key != self.offset_key:
                yield key, value
