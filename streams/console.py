"""How the ``q2c`` command ends and what it prints: tables (rich) for people, an error as one
line, and an exit code that says what kind of failure it was, for scripts and orchestrators.

| code | meaning |
|---|---|
| 0 | done; everything asked about is well |
| 1 | a finding: a part unhealthy, a difference unexplained, nothing found, a backfill not read |
| 2 | usage: an unknown command, option or argument (click's own code) |
| 3 | refused: Kafka Connect refused a connector or a task failed, the stack could not start |
| 4 | unreachable: PostgreSQL, Kafka, Kafka Connect or the schema registry cannot be reached |
| 5 | unexpected: a defect; ``Q2C_DEBUG=1`` shows the traceback |
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table

from streams.errors import Refused, Unreachable

OK, FINDING, USAGE, REFUSED, UNREACHABLE, UNEXPECTED = 0, 1, 2, 3, 4, 5


def exit_code(exc: BaseException) -> int:
    """The exit code an exception ends the command with."""
    import httpx
    import psycopg
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from streams.connectors import ConnectorError
    from streams.stack.process import StackError

    if isinstance(exc, (Unreachable, httpx.TransportError, psycopg.OperationalError, ConnectionError, TimeoutError)):
        return UNREACHABLE
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        # librdkafka names its local (client-side) error codes with a leading underscore
        transport = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN,  # noqa: SLF001
                     KafkaError._RESOLVE, KafkaError.BROKER_NOT_AVAILABLE}  # noqa: SLF001
        return UNREACHABLE if error is None or error.code() in transport else REFUSED
    # an answer that says no: Connect, the registry (incompatible, unauthorised), any HTTP status
    if isinstance(exc, (Refused, ConnectorError, StackError, httpx.HTTPStatusError, SchemaRegistryError)):
        return REFUSED
    return UNEXPECTED


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "…"


class CommandGroup(click.Group):
    """The ``q2c`` group: any error a command does not handle ends it as one line on stderr with
    its exit code, never a traceback (unless ``Q2C_DEBUG`` is set)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - every other error: one line and its code
            code = exit_code(exc)
            if os.environ.get("Q2C_DEBUG"):
                traceback.print_exc()
            hint = " (a defect: Q2C_DEBUG=1 shows where)" if code == UNEXPECTED else ""
            click.echo(f"error: {one_line(exc)}{hint}", err=True)
            ctx.exit(code)


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None,
          out: Console | None = None) -> None:
    """Rows as a table on the terminal (plain text when piped; ``--json`` is for programs)."""
    shown = Table(*columns, title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for row in rows:
        shown.add_row(*("" if cell is None else str(cell) for cell in row))
    (out or console()).print(shown)
