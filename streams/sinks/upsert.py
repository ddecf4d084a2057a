"""Idempotent, batched upserts: one statement per table per batch, rows written only when they
differ (so ``updated_at`` moves only on a real change and replays write nothing)."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import psycopg


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str], touch: str | None = "updated_at") -> str:
    cols = ", ".join(columns)
    placeholders = ", ".join(["%s"] * len(columns))
    changing = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in changing)
    if touch:
        sets += f", {touch} = now()"
    distinct = " OR ".join(f"{table}.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in changing)
    return (
        f"INSERT INTO {table} ({cols}) VALUES ({placeholders}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} WHERE {distinct}"
    )


def upsert(conn: psycopg.Connection, table: str, columns: Sequence[str], key: Sequence[str],
           rows: Iterable[dict[str, Any]], touch: str | None = "updated_at") -> int:
    values = [tuple(r[c] for c in columns) for r in rows]
    if not values:
        return 0
    with conn.cursor() as cur:
        cur.executemany(upsert_sql(table, columns, key, touch), values)
    return len(values)
