"""The ``q2c`` command. How it ends (exit codes) and prints (tables): ``streams.console``."""
from __future__ import annotations

import json
import sys

import click

from streams import console
from streams.config import load


@click.group(cls=console.CommandGroup)
@click.version_option(package_name="q2c-sync", prog_name="q2c")
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
    hints = {"jars": "Kafka, Connect and Debezium from Maven Central (minutes, the first time only)",
             "postgres": "PostgreSQL, the firm's databases and the sync's roles",
             "connect": "Kafka Connect and the Debezium connectors (their first snapshot)"}
    try:
        with console.console(stderr=True).status("starting…") as shown:
            Stack(settings).up(say=click.echo, with_worker=not no_worker,
                               starting=lambda label: shown.update(f"{label}: {hints.get(label, 'starting')}…"))
    except StackError as exc:  # what failed, and the end of its log: more than one line is useful here
        click.echo(f"error: {exc}", err=True)
        sys.exit(console.REFUSED)
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
        console.table(["part", "health", "detail"],
                      [(p.name, "healthy" if p.healthy else "[red]DOWN[/]", p.detail) for p in parts])
    sys.exit(console.OK if all(p.healthy for p in parts) else console.FINDING)


@main.command()
def env() -> None:
    """Print ``export`` lines for the embedded stack's addresses, for a person's shell.

    The names (``Q2C_STACK_*``) are none of the settings': evaluated in a shell, they override
    nothing, so ``q2c up`` still starts the worker as the sync's own role and the tests in that
    shell still use their own stack. The DSNs are the cluster owner's, for acting as the firm's
    users (approving a quote in the CRM)."""
    s = load()
    values = {
        "Q2C_STACK_HOME": str(s.home_dir),
        **{f"Q2C_STACK_{db.upper()}_DSN": s.dsn(db) for db in ("crm", "psa", "finance", "erp", "warehouse")},
        "Q2C_STACK_KAFKA": s.bootstrap,
        "Q2C_STACK_CONNECT_URL": s.connect_url,
        "Q2C_STACK_METRICS_URL": s.metrics_url,
        "Q2C_STACK_STATUS_URL": s.metrics_url.removesuffix("/metrics") + "/status",
        "Q2C_STACK_PROMETHEUS_URL": s.prometheus_url,
    }
    for key, value in values.items():
        click.echo(f"export {key}='{value}'")


@main.command("settings")
@click.option("--markdown", is_flag=True, help="the reference of every setting (docs/configuration.md)")
def settings_command(markdown: bool) -> None:
    """Every setting (Q2C_*) in effect here, with its default; secrets masked."""
    import re

    from pydantic import SecretStr

    from streams.config import SECTIONS, Settings, reference

    if markdown:
        click.echo(reference(), nl=False)
        return
    current = load()
    rows = []
    for names in SECTIONS.values():
        for name in names:
            value, field = getattr(current, name), Settings.model_fields[name]
            shown = "********" if isinstance(value, SecretStr) else value
            if isinstance(shown, str):  # a DSN's password
                shown = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:********@", shown)
            default = "(generated)" if field.default_factory else field.default
            rows.append((f"Q2C_{name.upper()}", "" if shown is None else shown, "" if default is None else default))
    console.table(["variable", "in effect", "default"], rows)


@main.command()
def worker() -> None:
    """Run the Faust worker in the foreground."""
    from streams.agents.worker import run

    run(load())


@main.command()
@click.argument("topic")
@click.option("--follow", is_flag=True, help="keep reading new events")
@click.option("--limit", type=int, default=None, help="stop after this many events")
def consume(topic: str, follow: bool, limit: int | None) -> None:
    """Print a topic's events as JSON lines (canonical Avro decoded)."""
    from streams.operations.consume import lines

    for line in lines(load(), topic, follow=follow, limit=limit):
        click.echo(line)


@main.command()
@click.option("--yes", is_flag=True, help="confirm: the worker restarts and re-reads every change")
@click.option("--follow/--no-follow", default=True, help="show its progress until it is done")
def replay(yes: bool, follow: bool) -> None:
    """Re-process every retained change event from the start (sinks end exactly as before)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.operations.replay import progress, replay_everything
    from streams.stack.manager import Stack

    if not yes:
        raise click.UsageError("replay re-processes every retained change from the start; run again with --yes")
    settings = load()
    replay_everything(Stack(settings), say=click.echo)
    if not follow:
        click.echo("replay started; `q2c status` shows the worker, its lag is on /metrics")
        return
    columns = (TextColumn("re-reading changes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console.console(stderr=True)) as bar:
        task = bar.add_task("replay", total=None)
        while True:
            done, total, finished = progress(settings)
            if finished:
                break
            bar.update(task, completed=done, total=total)
            time.sleep(1)
    click.echo("replay done: every change re-read and every engagement derived again")


@main.group()
def schemas() -> None:
    """The canonical Avro schemas and the schema registry."""


@schemas.command("register")
def schemas_register() -> None:
    """Register every canonical schema in the configured registry (Q2C_SCHEMA_REGISTRY_URL), under
    the subject ``<topic>-value``; the registry refuses a version that breaks compatibility."""
    from streams.canonical.wire import CanonicalWire

    settings = load()
    if not settings.schema_registry_url:
        raise click.UsageError("no schema registry is configured (Q2C_SCHEMA_REGISTRY_URL)")
    ids = CanonicalWire.from_settings(settings).register_all()
    for subject, schema_id in ids.items():
        click.echo(f"{subject}\t{schema_id}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def reconcile(as_json: bool) -> None:
    """Compare the sources with the ERP; exit 1 when any difference is unexplained."""
    from streams.operations.reconcile import reconcile as run
    from streams.operations.reconcile import report

    findings = run(load())
    unexplained = sum(not f.explained for f in findings)
    if as_json:
        click.echo(report(findings))
    elif not findings:
        click.echo("the ERP agrees with the sources")
    else:
        console.table(["", "difference", "key", "cause", "detail"],
                      [("ok" if f.explained else "[red]!![/]", f.kind, f.key, f.cause, f.detail) for f in findings])
        click.echo(f"{unexplained} unexplained, {len(findings) - unexplained} explained")
    sys.exit(console.FINDING if unexplained else console.OK)


@main.command()
@click.argument("number_or_trace")
@click.option("--json", "as_json", is_flag=True)
def trace(number_or_trace: str, as_json: bool) -> None:
    """One engagement from quote approval to cash (a quote, change order, contract or invoice number, or a trace id)."""
    from streams.operations import deadletters
    from streams.operations.trace import render
    from streams.operations.trace import trace as find

    settings = load()
    try:
        letters = deadletters.entries(settings)
    except Exception as exc:  # noqa: BLE001 - Kafka away: the timeline without dead letters, said so
        click.echo(f"(dead letters not read: {exc})", err=True)
        letters = []
    found = find(settings, number_or_trace, letters)
    if as_json:
        click.echo(found.as_json() if found else "null")
    else:
        render(found, number_or_trace)
    sys.exit(console.OK if found else console.FINDING)


@main.command()
@click.argument("contract_or_trace")
@click.option("--json", "as_json", is_flag=True)
def audit(contract_or_trace: str, as_json: bool) -> None:
    """Every row the sync wrote for an engagement (contract number or trace id), with its change and cause."""
    from streams.operations import audit_trail

    rows = audit_trail.history(load(), contract_or_trace)
    if as_json:
        click.echo(audit_trail.as_json(rows))
    else:
        audit_trail.render(rows, contract_or_trace)
    sys.exit(console.OK if rows else console.FINDING)


@main.group()
def sources() -> None:
    """The firm's source databases (and the ERP's and warehouse's grants) as capture needs them."""


@sources.command("prepare")
@click.option("--dry-run", is_flag=True, help="print the SQL (passwords masked) and what is wrong; change nothing")
def sources_prepare(dry_run: bool) -> None:
    """Roles, grants, publications, replica identity and Debezium's signal tables, idempotent; run
    as each database's owner (Q2C_<DB>_DSN). Passwords: Q2C_CAPTURE_PASSWORD, Q2C_SYNC_PASSWORD."""
    import psycopg

    from streams import sources as prepare

    settings = load()
    wrong = prepare.problems(settings)
    for problem in wrong:
        click.echo(f"problem: {problem}", err=True)
    try:
        statements = prepare.plan(settings)
    except psycopg.Error as exc:
        click.echo(f"error: cannot read the source databases' catalogs: {console.one_line(exc)}", err=True)
        sys.exit(console.UNREACHABLE)
    if dry_run:
        database = None
        for statement in statements:
            if statement.database != database:
                database = statement.database
                click.echo(f"\\connect {database}")
            click.echo(f"{statement.shown};")
        sys.exit(console.FINDING if wrong else console.OK)
    if wrong:
        click.echo("nothing changed: put the problems above right first", err=True)
        sys.exit(console.FINDING)
    prepare.apply(settings, statements)
    click.echo(f"{len(statements)} statements applied; capture can start (`q2c connectors apply`)")


@main.command()
@click.argument("tables", nargs=-1, required=True)
@click.option("--where", default=None, help="an SQL condition: re-read only the rows it selects (each table)")
@click.option("--wait/--no-wait", default=True, help="follow the snapshot until it completes")
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="seconds to wait for it")
def backfill(tables: tuple[str, ...], where: str | None, wait: bool, timeout: float) -> None:
    """Re-read TABLES (``crm.quote``…) through a Debezium incremental snapshot, while streaming goes
    on: for a table newly captured, or to read rows again after a fix. Idempotent: rows the sync
    already holds change nothing."""
    from streams.operations import backfill as snapshot

    settings = load()
    try:
        wanted = snapshot.requests(list(tables), where)
    except snapshot.BackfillError as exc:
        raise click.UsageError(str(exc)) from exc
    snapshot.ensure_notification_topic(settings)
    for request in wanted:
        snapshot.send(settings, request)
        click.echo(f"{request.database}: asked its connector to re-read {', '.join(request.tables)} (signal {request.id})")
    if not wait:
        return
    err = console.console(stderr=True)
    with err.status("waiting for the connectors…") as shown:
        def progress(request, notification) -> None:
            line = f"{request.database}: {notification.describe()}"
            shown.update(line)
            if notification.kind == "TABLE_SCAN_COMPLETED":
                err.print(line)
        outcomes = snapshot.follow(settings, wanted, timeout, progress)
    for outcome in outcomes:
        read = ", ".join(f"{table} {rows} rows" for table, rows in outcome.rows.items())
        click.echo(f"{outcome.request.database}: {outcome.finished or 'unfinished'}" + (f" ({read})" if read else ""))
        for problem in outcome.problems:
            click.echo(f"  problem: {problem}", err=True)
    sys.exit(console.OK if all(o.succeeded for o in outcomes) else console.FINDING)


@main.command()
@click.option("--size", type=click.IntRange(1, 10_000), default=12, show_default=True, help="client accounts (people: three each)")
@click.option("--rate", type=click.FloatRange(0.1), default=25.0, show_default=True, help="changes a second, at most")
@click.option("--seed", type=int, default=None, help="the same seed makes the same firm (default: a new one, printed)")
@click.option("--days", type=click.IntRange(1), default=None, help="simulated days to run (default: until Ctrl-C)")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="the first simulated day (default: today)")
@click.option("--day-seconds", type=click.FloatRange(0), default=2.0, show_default=True,
              help="a simulated day lasts this long at least (the sync's projects and billing queue come meanwhile)")
def demo(size: int, rate: float, seed: int | None, days: int | None, start, day_seconds: float) -> None:
    """A firm in a box: simulated sales, delivery and finance people at work on the source
    databases (quotes of all four models and change orders, staffing, daily time and expenses
    through approval, milestones accepted, fiscal periods opened, invoices and receipts), while
    the sync fills the ERP. Ctrl-C stops it cleanly, between two changes."""
    import random
    import signal
    from datetime import date

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from streams.demo.run import run

    settings = load()
    seed = seed if seed is not None else random.SystemRandom().randrange(1_000_000)
    click.echo(f"simulating a firm of {size} clients (seed {seed}) at {rate:g} changes/s; Ctrl-C stops it")
    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console.console(stderr=True)) as bar:
        task = bar.add_task("setting up the firm…")
        tally = run(settings, size, rate, seed, start.date() if start else date.today(), days, day_seconds,
                    shown=lambda t: bar.update(task, description=t.line()), stopping=lambda: bool(interrupted))
    made = ", ".join(f"{n} {what}" for what, n in sorted(tally.actions.items()))
    click.echo(f"{'stopped' if interrupted else 'done'} after {tally.days} simulated days: {made}")
    click.echo("ERP: " + ", ".join(f"{n} {what}" for what, n in tally.erp.items()))


@main.group()
def connectors() -> None:
    """The Debezium connectors of connect/ on Kafka Connect (Q2C_CONNECT_REST_URL, or the embedded stack's)."""


@connectors.command("apply")
@click.option("--wait/--no-wait", default=True, help="until every connector and task runs")
def connectors_apply(wait: bool) -> None:
    """Create or update every connector from connect/ over Connect's REST API (idempotent)."""
    from streams import connectors as api

    url = load().connect_url
    applied = api.apply(url)
    for one in applied:
        click.echo(f"{one.name:<16} {one.action}")
    if wait:
        api.wait_running(url, [a.name for a in applied])
        click.echo("every connector and task running")


@connectors.command("status")
@click.option("--json", "as_json", is_flag=True)
def connectors_status(as_json: bool) -> None:
    """Each connector and task, and its state; exit 1 unless all run."""
    import dataclasses

    from streams import connectors as api

    found = api.states(load().connect_url)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) | {"running": s.running} for s in found]))
    elif not found:
        click.echo("no connectors")
    else:
        rows = []
        for state in found:  # each connector, its tasks beneath it
            rows.append((state.name, "", state.state, ""))
            rows += [("", task_id, task_state, trace) for task_id, task_state, trace in state.tasks]
        console.table(["connector", "task", "state", "trace"], rows)
    sys.exit(console.OK if found and all(s.running for s in found) else console.FINDING)


@main.group()
def dlq() -> None:
    """Dead letters: change events that could not be processed."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(as_json: bool) -> None:
    """Every dead letter, with its reason and origin."""
    from streams.operations import deadletters

    letters = deadletters.entries(load())
    if as_json:
        click.echo(deadletters.as_json(letters))
        return
    if not letters:
        click.echo("no dead letters")
        return
    console.table(["id", "reason", "from", "error", "replayed"],
                  [(d.id, d.reason, f"{d.source_topic}:{d.source_partition}:{d.source_offset}", d.error[:200], d.replayed_at)
                   for d in letters])


@dlq.command("show")
@click.argument("letter_id")
@click.option("--json", "as_json", is_flag=True)
def dlq_show(letter_id: str, as_json: bool) -> None:
    """One dead letter, whole."""
    import dataclasses

    from streams.operations import deadletters

    letter = deadletters.find(load(), letter_id)
    if letter is None:
        click.echo(f"no dead letter {letter_id}", err=True)
        sys.exit(console.FINDING)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(letter)))
    else:
        for key, value in dataclasses.asdict(letter).items():
            click.echo(f"{key:<17} {value}")


@dlq.command("replay")
@click.argument("letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="every dead letter not replayed yet")
@click.option("--json", "as_json", is_flag=True)
def dlq_replay(letter_id: str | None, replay_all: bool, as_json: bool) -> None:
    """Re-drive dead letters through the same idempotent path, once their cause is fixed."""
    from streams.operations import deadletters

    settings = load()
    letters = deadletters.entries(settings)
    if replay_all:
        chosen = [d for d in letters if not d.replayed_at]
    elif letter_id:
        chosen = [d for d in letters if d.id == letter_id]
        if not chosen:
            click.echo(f"no dead letter {letter_id}", err=True)
            sys.exit(console.FINDING)
    else:
        raise click.UsageError("name a dead letter ID or --all")
    done = deadletters.replay(settings, chosen)
    click.echo(json.dumps({"replayed": done}) if as_json else f"replayed {len(done)}: {' '.join(done)}")


if __name__ == "__main__":
    main()
