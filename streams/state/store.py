"""Where the mirror and the ledger keep their rows: a key-value store with prefix scans.

The mirror and the ledger hold their rows (and the mirror its indexes, as keys) in a ``Store``
instead of dicts of their own, so one code path runs with every row on the heap
(``MemoryStore``: tests, the pure benchmarks, reconcile, a scaled-out worker's copies) and with
rows on local disk read on demand (``CachedStore`` over the worker's RocksDB tables,
``streams/agents/table_rows.py``). No I/O here.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from sortedcontainers import SortedList

from streams.state.keys import escape, unescape


class Store(Protocol):
    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def scan(self, prefix: str) -> Iterable[tuple[str, Any]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""
        ...


class MemoryStore:
    """Values as they are, on the heap, with the keys kept sorted for scans."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._keys = SortedList()

    def get(self, key: str) -> Any | None:
        return self._values.get(key)

    def put(self, key: str, value: Any) -> None:
        if key not in self._values:
            self._keys.add(key)
        self._values[key] = value

    def delete(self, key: str) -> None:
        if key in self._values:
            del self._values[key]
            self._keys.remove(key)

    def scan(self, prefix: str) -> list[tuple[str, Any]]:
        found = []
        for key in self._keys.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            found.append((key, self._values[key]))
        return found  # a list: the caller may write while it reads the result



class PrefixView(Mapping):
    """The entries of a store under one key prefix, as a mapping of what follows the prefix (one
    key component, escaped in the store: ``streams.state.keys``): one entry read at a time, all
    of them (in key order) only when iterated."""

    def __init__(self, store: Store, prefix: str):
        self.store, self.prefix = store, prefix

    def __getitem__(self, key: str) -> Any:
        value = self.store.get(self.prefix + escape(key))
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # Mapping's raises and catches a KeyError per miss
        value = self.store.get(self.prefix + escape(key))
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.store.scan(self.prefix))

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]  # one scan, not a read per key
        return ((unescape(key[len(self.prefix):]), value) for key, value in self.store.scan(self.prefix))


class Codec(Protocol):
    """How the values of one store are kept in its backend (bytes, or JSON-safe documents).
    ``uncached``: key prefixes whose entries are only ever scanned (index entries), kept out of
    the cache."""

    uncached: tuple[str, ...]

    def encode(self, key: str, value: Any) -> Any: ...

    def decode(self, key: str, doc: Any) -> Any: ...


class PlainCodec:
    """Values that are documents already (numbers, JSON-safe dicts)."""

    uncached: tuple[str, ...] = ()

    def encode(self, key: str, value: Any) -> Any:
        return value

    def decode(self, key: str, doc: Any) -> Any:
        return doc


class Backend(Protocol):
    """What a codec wrote, by key, with prefix scans in key order (a Faust table on RocksDB)."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, doc: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]: ...


_ABSENT = object()


class CachedStore:
    """A ``Store`` over a backend of documents: values are decoded on demand and the ``size``
    most recently used kept (absent keys too, so a missing row costs one backend read). A scan
    reads the backend and leaves the cache as it was: a full derivation of a large engagement
    must not push out the rows every batch reads."""

    def __init__(self, backend: Backend, codec: Codec, size: int = 50_000):
        self.backend = backend
        self.codec = codec
        self.size = size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._uncached = tuple(getattr(codec, "uncached", ()))

    def get(self, key: str) -> Any | None:
        value = self._cache.get(key, _ABSENT)
        if value is _ABSENT:
            doc = self.backend.get(key)
            value = self.codec.decode(key, doc) if doc is not None else None
            self._remember(key, value)
        else:
            self._cache.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self.backend.put(key, self.codec.encode(key, value))
        self._remember(key, value)

    def delete(self, key: str) -> None:
        self.backend.delete(key)
        self._remember(key, None)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, doc in self.backend.scan(prefix):
            value = self._cache.get(key, _ABSENT)
            yield key, (self.codec.decode(key, doc) if value is _ABSENT else value)

    def _remember(self, key: str, value: Any) -> None:
        if self._uncached and key.startswith(self._uncached):
            self._cache.pop(key, None)
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
