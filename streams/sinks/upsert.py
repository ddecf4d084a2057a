"""Idempotent, batched upserts: one statement per table per batch, rows written only when they
differ (so ``updated_at`` moves only on a real change and replays write nothing).

The batch's rows go to the server as one JSON document, turned into typed rows by the statement
itself (``INSERT … SELECT … FROM json_to_recordset(%s::json) AS x(col type, …) ON CONFLICT …
DO UPDATE … WHERE … IS DISTINCT FROM …``): one statement, one parameter and one round trip
however many rows. msgspec writes a batch in native code; psycopg's array parameters (one per
column) dump element by element in Python and cost twice the
CPU a row (measured: ~20 against ~10 µs a billing event, batches of 2,000). Decimals and dates go
as JSON strings and are read by the column types' own input functions, so nothing passes through
a float. It needs no temporary table, so nothing beyond insert and update on the target. A key
given twice in a batch would have the statement touch a row twice, which PostgreSQL refuses: the
last row of a key wins, as it did row by row."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import msgspec
import psycopg

_types: dict[tuple[str, str], dict[str, str]] = {}  # (database, table) → column → its SQL type


def column_types(conn: psycopg.Connection, table: str) -> dict[str, str]:
    """Each column's type as SQL spells it (``numeric(18,2)``, ``date``, ...), read once."""
    where = (conn.info.dbname, table)
    if where not in _types:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,)).fetchall()
        _types[where] = dict(rows)
    return _types[where]


# Decimals as JSON strings of their text (as ``str`` gives it), dates and times in ISO 8601 (UTC
# as "Z"): what the columns' input functions read exactly, never through a float.
_encode = msgspec.json.Encoder(decimal_format="string").encode


@cache
def upsert_sql(table: str, columns: tuple[str, ...], key: tuple[str, ...], types: tuple[tuple[str, str], ...],
               touch: str | None = "updated_at") -> str:
    cols = ", ".join(columns)
    typed = dict(types)
    definitions = ", ".join(f"{c} {typed[c]}" for c in columns)
    changing = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in changing)
    if touch:
        sets += f", {touch} = now()"
    distinct = " OR ".join(f"{table}.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in changing)
    return (
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM json_to_recordset(%s::json) AS x({definitions}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} WHERE {distinct}"
    )


def upsert(conn: psycopg.Connection, table: str, columns: Sequence[str], key: Sequence[str],
           rows: Iterable[dict[str, Any]], touch: str | None = "updated_at") -> int:
    last = {tuple(r[k] for k in key): r for r in rows}  # the last row of each key
    if not last:
        return 0
    names = set(columns)
    docs = [r if r.keys() == names else {c: r[c] for c in columns} for r in last.values()]
    sql = upsert_sql(table, tuple(columns), tuple(key), tuple(column_types(conn, table).items()), touch)
    conn.execute(sql, [_encode(docs).decode()])
    return len(docs)
