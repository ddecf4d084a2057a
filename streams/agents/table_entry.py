"""One entry of a Faust table set or removed: the way every agent writes its state."""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


def put_or_remove(table: MutableMapping, key: str, value: Any) -> None:
    """``value`` stored under ``key``; None removes the entry (asking first: a Faust table with a
    default answers any key, and deleting a missing one would write a needless tombstone)."""
    if value is not None:
        table[key] = value
    elif key in table:
        del table[key]
