"""Stand-ins the tests (and anyone testing code built on the sync) use in place of the worker's
tables, so the state layer's on-demand path runs without Faust or Kafka."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sortedcontainers import SortedDict


class JsonTable:
    """A ``streams.state.store.Backend`` keeping what a codec wrote as a table does: bytes as
    they are, documents as JSON text (what comes back went through JSON). Counts reads and
    writes."""

    def __init__(self) -> None:
        self.docs: SortedDict = SortedDict()
        self.reads = self.writes = 0

    def get(self, key: str) -> Any | None:
        self.reads += 1
        return self._out(self.docs.get(key))

    def put(self, key: str, doc: Any) -> None:
        self.writes += 1
        self.docs[key] = bytes(doc) if isinstance(doc, bytes) else json.dumps(doc)

    def delete(self, key: str) -> None:
        self.writes += 1
        self.docs.pop(key, None)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key in list(self.docs.irange(minimum=prefix)):
            if not key.startswith(prefix):
                return
            yield key, self._out(self.docs[key])

    @staticmethod
    def _out(kept: bytes | str | None) -> Any:
        return json.loads(kept) if isinstance(kept, str) else kept
