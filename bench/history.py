"""A firm's history, written fast into the source databases, and what the sync makes of it: run by
hand (``python -m bench.history``; ``make bench-history``).

On a fresh embedded stack with the worker stopped ("capture paused" for the sync: Debezium still
captures into Kafka), COPY writes T&M engagements with approved time entries and expenses (and
optionally one long programme), in source transactions of ``--chunk`` rows. Then the worker
starts and the clock runs until the ERP holds every billing event. Reported: the catch-up rate,
worker CPU per change, RSS per source row held; then live approvals at ``--live-rate`` per second
with a ``kill -9`` of the worker halfway: the time from the restart to a new change in the ERP,
and the latency from source commit to ERP row (p50, p99) with and without the kill."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from datetime import date, timedelta

import psycopg

from bench.throughput import RESULTS, cpu_s, rss_mb
from streams.testing.stacks import TEST_PORTS, discard, throwaway_home

RATE, COST = "150", "80"


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows, chunk: int) -> int:
    """COPY ``rows`` into ``table``, one source transaction per ``chunk`` rows."""
    written, batch = 0, []

    def flush():
        nonlocal written, batch
        if not batch:
            return
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        written += len(batch)
        batch = []

    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            flush()
    flush()
    return written


def write_history(settings, base: int, engagements: list[tuple[int, int, int]], chunk: int) -> dict[str, int]:
    """``engagements``: (n, entries, expenses) each. Returns the rows written per table."""
    counts: dict[str, int] = {}
    start, end = date(2024, 1, 1), date(2026, 12, 31)
    with psycopg.connect(settings.dsn("crm"), autocommit=True) as crm:
        counts["crm.account"] = _copy(crm, "crm.account", ("id", "account_number", "name", "billing_country", "currency", "legal_entity"),
                                      ((n, f"ACC-H{n}", f"Client {n}", "GB", "GBP", "UK01") for n, _, _ in engagements), chunk)
        _copy(crm, "crm.opportunity", ("id", "account_id", "name", "stage"),
              ((n, n, "Opp", "closed_won") for n, _, _ in engagements), chunk)
        counts["crm.quote"] = _copy(crm, "crm.quote", (
            "id", "quote_number", "opportunity_id", "account_id", "revision", "status", "commercial_model", "currency",
            "start_date", "end_date", "discount_pct", "total_amount", "approved_at", "approved_by"),
            ((n, f"Q-H{n}", n, n, 1, "approved", "time_and_materials", "GBP", start, end, 0, 0, "2024-01-01T09:00:00Z", "history")
             for n, _, _ in engagements), chunk)
        counts["crm.quote_line"] = _copy(crm, "crm.quote_line", (
            "id", "quote_id", "line_no", "line_type", "service_code", "role_code", "quantity", "unit_price"),
            (row for n, _, _ in engagements for row in (
                (n * 10 + 1, n, 1, "role_rate", "IMPL", "CONS", 1000000, RATE),
                (n * 10 + 2, n, 2, "expense_allowance", "IMPL", None, 1, 10000000))), chunk)
    with psycopg.connect(settings.dsn("psa"), autocommit=True) as psa:
        counts["psa.project"] = _copy(psa, "psa.project", ("id", "project_code", "name", "crm_quote_number", "status", "created_by"),
                                      ((n, f"PRJ-H{n}", f"Programme {n}", f"Q-H{n}", "active", "user") for n, _, _ in engagements), chunk)
        counts["psa.resource"] = _copy(psa, "psa.resource", (
            "id", "employee_no", "full_name", "email", "role_code", "home_region", "legal_entity", "cost_rate", "cost_currency"),
            ((n, f"EH{n}", "A Person", "a@example.com", "CONS", "EMEA", "UK01", COST, "GBP") for n, _, _ in engagements), chunk)
        counts["psa.assignment"] = _copy(psa, "psa.assignment", (
            "id", "project_id", "resource_id", "role_code", "planned_hours", "start_date", "end_date"),
            ((n, n, n, "CONS", 100000, start, end) for n, _, _ in engagements), chunk)
        days = (end - start).days + 1
        counts["psa.timesheet_entry"] = _copy(psa, "psa.timesheet_entry", (
            "id", "resource_id", "project_id", "work_date", "hours", "billable", "status", "approved_at", "approved_by"),
            ((n * 1_000_000 + t, n, n, start + timedelta(days=t % days), 1 + t % 8, True, "approved",
              "2024-01-02T09:00:00Z", "history") for n, entries, _ in engagements for t in range(entries)), chunk)
        counts["psa.expense_line"] = _copy(psa, "psa.expense_line", (
            "id", "resource_id", "project_id", "expense_date", "category", "amount", "currency", "status"),
            ((n * 1_000_000 + x, n, n, start + timedelta(days=x % days), "travel", f"{10 + x % 90}.00", "GBP", "approved")
             for n, _, expenses in engagements for x in range(expenses)), chunk)
    with psycopg.connect(settings.dsn("finance"), autocommit=True) as finance:
        finance.execute("insert into finance.gl_tax_rate (tax_cd, country_cd, rate_pct, valid_from)"
                        " values ('STD', 'GB', 20, '2000-01-01') on conflict do nothing")
    return counts


def _erp_events(settings, numbers: list[str]) -> int:
    with psycopg.connect(settings.dsn("erp", "sync")) as erp:
        return erp.execute("select count(*) from erp_inbound.billing_event where contract_number = any(%s)", (numbers,)).fetchone()[0]


def _wait(what: str, check, timeout: float, every: float = 1.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout}s")


LIVE_IDS = 9_000_000_000  # live entries' ids, far above the history's (n * 1,000,000 + t)


def live(settings, stack, n: int, rate: float, seconds: float, kill_at: float | None, run: int,
         wipe: bool = False) -> dict:
    """Approve time entries of engagement ``n`` at ``rate`` per second for ``seconds``; with
    ``kill_at``, ``kill -9`` the worker that many seconds in and start it again (``wipe``: with its
    local state deleted first, as on a new host: it rebuilds from the changelogs). Returns the
    commit → ERP latencies and, with a kill, how long after the restart a new entry reached the ERP."""
    from streams.stack.process import StackError, kill_hard

    first_id = LIVE_IDS + run * 1_000_000
    out: dict = {}

    def approvals():
        with psycopg.connect(settings.dsn("psa"), autocommit=True) as psa:
            started, i = time.monotonic(), 0
            while time.monotonic() - started < seconds:
                psa.execute("insert into psa.timesheet_entry (id, resource_id, project_id, work_date, hours, billable, status, approved_at)"
                            " values (%s, %s, %s, '2026-06-01', 2, true, 'approved', now())", (first_id + i, n, n))
                i += 1
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
            out["written"] = i

    writer = threading.Thread(target=approvals)
    writer.start()
    if kill_at is not None:
        time.sleep(kill_at)
        kill_hard(stack.worker.pidfile)
        time.sleep(2)  # its ports are released
        if wipe:
            shutil.rmtree(settings.home_dir / "faust")
        restarted = time.monotonic()
        try:
            stack.worker.start()
        except StackError as exc:  # still restoring its tables: the clock runs on
            print(f"  (the worker was not healthy within its start timeout: {str(exc).splitlines()[0]})")
        marker = first_id + 999_999
        with psycopg.connect(settings.dsn("psa"), autocommit=True) as psa:
            psa.execute("insert into psa.timesheet_entry (id, resource_id, project_id, work_date, hours, billable, status, approved_at)"
                        " values (%s, %s, %s, '2026-06-02', 3, true, 'approved', now())", (marker, n, n))
        with psycopg.connect(settings.dsn("erp", "sync"), autocommit=True) as erp:
            _wait("the new entry in the ERP after the restart", lambda: erp.execute(
                "select 1 from erp_inbound.billing_event where source_ref = %s", (f"psa.timesheet_entry:{marker}",)).fetchone(), 900, 0.2)
            out["restart_to_erp_s"] = time.monotonic() - restarted
    writer.join()
    refs = [f"psa.timesheet_entry:{first_id + i}" for i in range(out["written"])]
    with psycopg.connect(settings.dsn("erp", "sync"), autocommit=True) as erp:
        _wait("every live entry in the ERP", lambda: erp.execute(
            "select count(*) from erp_inbound.billing_event where source_ref = any(%s)", (refs,)).fetchone()[0] >= len(refs), 900)
    with psycopg.connect(settings.dsn("psa"), autocommit=True) as psa, psycopg.connect(settings.dsn("erp", "sync"), autocommit=True) as erp:
        approved = dict(psa.execute("select id, approved_at from psa.timesheet_entry where id between %s and %s",
                                    (first_id, first_id + len(refs) - 1)).fetchall())
        landed = erp.execute("select source_ref, updated_at from erp_inbound.billing_event where source_ref = any(%s)", (refs,)).fetchall()
    latencies = sorted((at - approved[int(ref.split(":")[1])]).total_seconds() * 1000 for ref, at in landed)
    out["p50_ms"] = statistics.median(latencies)
    out["p99_ms"] = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) > 1 else latencies[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engagements", type=int, default=100)
    parser.add_argument("--entries", type=int, default=400)
    parser.add_argument("--expenses", type=int, default=40)
    parser.add_argument("--long", type=int, default=20000, help="entries of one long programme (0: none)")
    parser.add_argument("--chunk", type=int, default=2000, help="rows per source transaction")
    parser.add_argument("--live-rate", type=float, default=100.0)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--rebuild", action="store_true", help="then kill -9 again with the local state deleted")
    args = parser.parse_args()

    from streams.config import Settings
    from streams.stack.manager import Stack

    home = throwaway_home("q2c-history-")
    os.environ.update({**TEST_PORTS, "Q2C_HOME": str(home)})
    stack = Stack(Settings())
    stack.up(say=lambda line: None, with_worker=False)
    s = stack.s
    try:
        base = 10_000
        plan = [(base + k, args.entries, args.expenses) for k in range(args.engagements)]
        if args.long:
            plan.append((base + args.engagements, args.long, 0))
        t0 = time.monotonic()
        counts = write_history(s, base, plan, args.chunk)
        rows = sum(counts.values())
        events = sum(e + x for _, e, x in plan)
        print(f"history: {rows:,} source rows ({counts['psa.timesheet_entry']:,} time entries, {counts['psa.expense_line']:,} expenses)"
              f" written in {time.monotonic() - t0:.1f}s")
        numbers = [f"Q-H{n}" for n, _, _ in plan]
        t0 = time.monotonic()
        stack.worker.start()
        cpu0, loader0 = cpu_s(stack.worker.pidfile, "self"), cpu_s(stack.worker.pidfile, "children")
        caught = _wait("every history event in the ERP", lambda: _erp_events(s, numbers) >= events, 7200,
                       max(2.0, events / 100_000))  # counting a large ERP often would slow the catch-up it measures
        cpu = cpu_s(stack.worker.pidfile, "self") - cpu0  # the Faust worker's process, without the warehouse loader's
        loader_cpu = cpu_s(stack.worker.pidfile, "children") - loader0
        rss = rss_mb(stack.worker.pidfile)
        print(f"catch-up: {events:,} billing events in {caught:.1f}s = {rows / caught:,.0f} source changes/s; "
              f"worker CPU {cpu:.0f}s = {cpu / rows * 1e6:,.0f} us per change (its warehouse loader's process meanwhile "
              f"{loader_cpu / rows * 1e6:,.0f}); worker RSS {rss:,.0f} MB "
              f"= {rss * 1024 * 1024 / rows:,.0f} bytes per source row held (start {time.monotonic() - t0 - caught:.1f}s before)")
        long_n = plan[-1][0]
        calm = live(s, stack, long_n if args.long else base, args.live_rate, args.live_seconds / 2, None, run=1)
        print(f"live, {args.live_rate:.0f}/s on {'the long programme' if args.long else 'an engagement'}: "
              f"commit -> ERP p50 {calm['p50_ms']:,.0f} ms, p99 {calm['p99_ms']:,.0f} ms")
        killed = live(s, stack, long_n if args.long else base, args.live_rate, args.live_seconds, args.live_seconds / 2, run=2)
        print(f"kill -9 halfway: a new entry in the ERP {killed['restart_to_erp_s']:.1f}s after the restart; "
              f"commit -> ERP p50 {killed['p50_ms']:,.0f} ms, p99 {killed['p99_ms']:,.0f} ms; "
              f"worker RSS after {rss_mb(stack.worker.pidfile):,.0f} MB")
        history = {"git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
                   "rows": rows, "catchup_eps": round(rows / caught), "worker_cpu_us_per_change": round(cpu / rows * 1e6),
                   "loader_cpu_us_per_change": round(loader_cpu / rows * 1e6),
                   "rss_bytes_per_row": round(rss * 1024 * 1024 / rows), "restart_to_erp_s": round(killed["restart_to_erp_s"], 1),
                   "live_p50_ms": round(calm["p50_ms"]), "live_p99_ms": round(calm["p99_ms"])}
        kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.write_text(json.dumps({**kept, "history": history}, indent=2) + "\n")  # make bench reports it
        if args.rebuild:
            lost = live(s, stack, long_n if args.long else base, args.live_rate, args.live_seconds, args.live_seconds / 2,
                        run=3, wipe=True)
            print(f"kill -9 and local state deleted (a new host): a new entry in the ERP {lost['restart_to_erp_s']:.1f}s "
                  f"after the restart, rebuilt from the changelogs; commit -> ERP p50 {lost['p50_ms']:,.0f} ms, "
                  f"p99 {lost['p99_ms']:,.0f} ms; worker RSS after {rss_mb(stack.worker.pidfile):,.0f} MB")
    finally:
        discard(stack)


if __name__ == "__main__":
    main()
