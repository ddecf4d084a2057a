"""The ``q2c`` command."""
from __future__ import annotations

import json
import sys

import click

from streams.config import load


@click.group()
def main() -> None:
    """q2c-sync: quote-to-cash change-data-capture sync."""


@main.command()
@click.option("--no-worker", is_flag=True, help="start the infrastructure only (tests run their own worker)")
def up(no_worker: bool) -> None:
    """Start the embedded stack in the background; return once every part is healthy."""
    from streams.stack.manager import Stack
    from streams.stack.process import StackError

    settings = load()
    click.echo(f"starting the embedded stack under {settings.home_dir}")
    try:
        Stack(settings).up(say=click.echo, with_worker=not no_worker)
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo("the stack is up; `q2c status` shows its health, `q2c env` where to connect")


@main.command()
def down() -> None:
    """Stop everything the stack started."""
    from streams.stack.manager import Stack

    stopped = Stack(load()).down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Health of each part of the stack; exit 1 if any is unhealthy."""
    from streams.stack.manager import Stack

    parts = Stack(load()).status()
    if as_json:
        click.echo(json.dumps([p.__dict__ for p in parts]))
    else:
        for p in parts:
            click.echo(f"{p.name:<12} {'healthy' if p.healthy else 'DOWN':<8} {p.detail}")
    sys.exit(0 if all(p.healthy for p in parts) else 1)


@main.command()
def env() -> None:
    """Print ``export`` lines for the stack's addresses."""
    s = load()
    values = {
        "Q2C_HOME": str(s.home_dir),
        "Q2C_CRM_DSN": s.dsn("crm"),
        "Q2C_PSA_DSN": s.dsn("psa"),
        "Q2C_FINANCE_DSN": s.dsn("finance"),
        "Q2C_ERP_DSN": s.dsn("erp"),
        "Q2C_WAREHOUSE_DSN": s.dsn("warehouse"),
        "Q2C_KAFKA_BOOTSTRAP": s.bootstrap,
        "Q2C_CONNECT_URL": s.connect_url,
        "Q2C_METRICS_URL": s.metrics_url,
        "Q2C_PROMETHEUS_URL": s.prometheus_url,
    }
    for key, value in values.items():
        click.echo(f"export {key}='{value}'")


@main.command()
def worker() -> None:
    """Run the Faust worker in the foreground."""
    from streams.agents.worker import run

    run(load())


if __name__ == "__main__":
    main()
