"""Idempotent, batched upserts: one statement per table per batch, rows written only when they
differ (so ``updated_at`` moves only on a real change and replays write nothing).

The batch's rows go to the server as one array per column, unnested into rows by the statement
itself (``INSERT … SELECT * FROM unnest(%s::text[], …) ON CONFLICT … DO UPDATE … WHERE … IS
DISTINCT FROM …``): one statement and one round trip however many rows, where a statement per
row (``executemany``) made the server plan and run each row on its own. It needs no temporary
table, so nothing beyond insert and update on the target. A key given twice in a batch would
have the statement touch a row twice, which PostgreSQL refuses: the last row of a key wins, as
it did row by row."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

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


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str], types: dict[str, str],
               touch: str | None = "updated_at") -> str:
    cols = ", ".join(columns)
    arrays = ", ".join(f"%s::{types[c]}[]" for c in columns)
    changing = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in changing)
    if touch:
        sets += f", {touch} = now()"
    distinct = " OR ".join(f"{table}.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in changing)
    return (
        f"INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} WHERE {distinct}"
    )


def upsert(conn: psycopg.Connection, table: str, columns: Sequence[str], key: Sequence[str],
           rows: Iterable[dict[str, Any]], touch: str | None = "updated_at") -> int:
    last = {tuple(r[k] for k in key): r for r in rows}  # the last row of each key
    if not last:
        return 0
    values = list(last.values())
    sql = upsert_sql(table, columns, key, column_types(conn, table), touch)
    conn.execute(sql, [[r[c] for r in values] for c in columns])
    return len(values)
