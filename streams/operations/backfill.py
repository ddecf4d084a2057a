"""``q2c backfill TABLE…``: Debezium re-reads whole tables through an incremental snapshot.

For a table newly captured (its rows existed before its connector listed it), or one to read again
after a fix (rows dead-lettered for a mapping since corrected, a sink restored from an old backup).
A row is sent into each table's database's signal table (``q2c_signal.debezium_signal``, made by
``q2c sources prepare``); its connector reads the table in chunks of its primary key, while
streaming goes on, and emits each row as a read (``op: r``). Debezium's watermarks keep a chunk from
overwriting a change streamed meanwhile. The sync is idempotent, so a row it already holds as read
changes nothing; rows deleted while not captured are not found by a snapshot (reconcile shows them).

Progress comes back on the connectors' notification topic (``notification.enabled.channels=sink``),
each notification carrying the id of the signal that asked for it.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
from confluent_kafka.admin import NewTopic

from streams.config import Settings
from streams.kafka_io import read_all
from streams.sources import SIGNAL_TABLE, captured_tables
from streams.topics import NOTIFICATIONS, create_missing

FINISHED = {"COMPLETED", "ABORTED"}
# TABLE_SCAN_COMPLETED's status when a table was read (or had nothing to read); anything else failed
READ = {"SUCCEEDED", "EMPTY"}


class BackfillError(ValueError):
    """A table that cannot be backfilled, in words."""


@dataclass(frozen=True)
class Request:
    """One signal: the tables of one database its connector is to re-read."""
    database: str
    tables: tuple[str, ...]
    where: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def signal_data(self) -> str:
        data: dict = {"data-collections": list(self.tables), "type": "incremental"}
        if self.where:
            data["additional-conditions"] = [{"data-collection": t, "filter": self.where} for t in self.tables]
        return json.dumps(data)


def requests(tables: list[str], where: str | None = None,
             captured: dict[str, list[str]] | None = None) -> list[Request]:
    """One request per database, from ``schema.table`` names; a table no connector captures is an error."""
    captured = captured_tables() if captured is None else captured
    database_of = {table: db for db, listed in captured.items() for table in listed}
    unknown = [t for t in tables if t not in database_of]
    if unknown:
        raise BackfillError(
            f"not captured: {', '.join(unknown)}; a backfill reads a table its connector lists "
            f"(table.include.list in connect/<db>.json): {', '.join(sorted(database_of))}")
    by_database: dict[str, list[str]] = {}
    for table in dict.fromkeys(tables):
        by_database.setdefault(database_of[table], []).append(table)
    return [Request(db, tuple(listed), where) for db, listed in sorted(by_database.items())]


def ensure_notification_topic(settings: Settings) -> None:
    """The notification topic exists before a signal is sent, so its reader finds it."""
    create_missing(settings, [NewTopic(NOTIFICATIONS, num_partitions=1, replication_factor=1)])


def send(settings: Settings, request: Request) -> None:
    """Insert the signal; the connector sees it in its stream (the signal table is published)."""
    with psycopg.connect(settings.dsn(request.database), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"INSERT INTO {SIGNAL_TABLE} (id, type, data) VALUES (%s, 'execute-snapshot', %s)",
                     (request.id, request.signal_data()))


@dataclass(frozen=True)
class Notification:
    """What a connector said about a snapshot (Debezium's notification, as its sink channel writes it)."""
    id: str
    kind: str                    # STARTED, IN_PROGRESS, TABLE_SCAN_COMPLETED, PAUSED, RESUMED, COMPLETED, ABORTED
    data: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> Notification | None:
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(value, dict) or value.get("aggregate_type") != "Incremental Snapshot":
            return None
        return cls(str(value.get("id")), str(value.get("type")), dict(value.get("additional_data") or {}))

    def describe(self) -> str:
        d = self.data
        if self.kind == "IN_PROGRESS":
            return f"reading {d.get('current_collection_in_progress', '?')} up to key {d.get('maximum_key', '?')}" + (
                f", at {d['last_processed_key']}" if d.get("last_processed_key") else "")
        if self.kind == "TABLE_SCAN_COMPLETED":
            return f"{self.tables}: {d.get('status', '?')}, {d.get('total_rows_scanned', '?')} rows read"
        return f"{self.kind.lower()} {d.get('data_collections', '')}".rstrip()

    @property
    def tables(self) -> str:
        """The table (or tables, comma-separated) the notification is about."""
        return self.data.get("data_collections") or self.data.get("data_collection") or "?"

    @property
    def failed_table(self) -> bool:
        return self.kind == "TABLE_SCAN_COMPLETED" and self.data.get("status") not in READ


@dataclass
class Outcome:
    request: Request
    finished: str | None = None           # COMPLETED or ABORTED
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.finished == "COMPLETED" and not self.problems


def follow(settings: Settings, wanted: list[Request], timeout: float,
           on_notification: Callable[[Request, Notification], None] = lambda r, n: None) -> list[Outcome]:
    """Read the notifications of ``wanted`` until each snapshot completes or aborts, ``timeout`` at most."""
    outcomes = {r.id: Outcome(r) for r in wanted}
    deadline = time.monotonic() + timeout
    for notification in _notifications(settings, deadline):
        outcome = outcomes.get(notification.id)
        if outcome is None:
            continue
        on_notification(outcome.request, notification)
        if notification.kind == "TABLE_SCAN_COMPLETED":
            if notification.failed_table:
                outcome.problems.append(notification.describe())
            else:
                outcome.rows[notification.tables] = int(notification.data.get("total_rows_scanned") or 0)
        if notification.kind in FINISHED:
            outcome.finished = notification.kind
        if all(o.finished for o in outcomes.values()):
            break
    for outcome in outcomes.values():
        if outcome.finished is None:
            outcome.problems.append(f"no word from the {outcome.request.database} connector within {timeout:.0f}s")
    return list(outcomes.values())


def _notifications(settings: Settings, deadline: float) -> Iterator[Notification]:
    for msg in read_all(settings, NOTIFICATIONS, follow=True, idle_s=1.0, until=deadline):
        notification = Notification.parse(msg.value()) if msg.value() else None
        if notification is not None:
            yield notification
