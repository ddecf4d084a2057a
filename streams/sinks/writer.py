"""The one writer behind every sink: it owns the connections to the sink databases, retries a
write with the one retry policy (``retry.py``) and reports the sink's health while it waits."""
from __future__ import annotations

from collections.abc import Callable

import psycopg

from streams.sinks.retry import with_backoff

Write = Callable[[psycopg.Connection], None]


class SinkWriter:
    def __init__(self, dsn: Callable[[str], str], on_wait: Callable[[str, bool], None] = lambda what, waiting: None):
        """``dsn(database)``: where a sink database is; ``on_wait(what, waiting)``: a write is
        failing and waits to retry (True) or went through again (False)."""
        self._dsn = dsn
        self._on_wait = on_wait
        self._conns: dict[str, psycopg.Connection] = {}

    def connection(self, database: str) -> psycopg.Connection:
        """The open connection to ``database`` (a broken one is replaced). Autocommit: each sink
        write is one transaction of its own."""
        conn = self._conns.get(database)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self._dsn(database), autocommit=True, connect_timeout=5,
                                   options="-c lock_timeout=10s -c statement_timeout=60s")
            self._conns[database] = conn
        return conn

    def forget(self, database: str) -> None:
        """Drop the connection to ``database`` (it failed): the next write opens a new one."""
        conn = self._conns.pop(database, None)
        if conn is not None and not conn.closed:
            conn.close()

    def write(self, what: str, database: str, write: Write) -> None:
        """Run ``write(connection)`` until it succeeds: transient failures wait with backoff and
        keep the batch, and so the order of the writes per engagement."""
        def attempt() -> None:
            try:
                write(self.connection(database))
            except psycopg.OperationalError:
                self.forget(database)
                raise

        with_backoff(what, attempt, lambda waiting: self._on_wait(what, waiting))

    def close(self) -> None:
        for database in list(self._conns):
            self.forget(database)
