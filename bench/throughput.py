"""Throughput benchmark, run by hand (`make bench-quick`): end to end through the real stack, and the
pure core (mirror + rules + diff) alone.

End to end: a generated load (streams/testing/load.py) is written to the PSA; the clock runs from the first
source commit until the ERP holds every billing event. Reported: source changes per second, and
the RSS of each part. Core: the same changes as RowChanges through ``Processor`` in batches,
no I/O, on one core."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from datetime import UTC, date, datetime
from pathlib import Path

from streams.testing.stacks import TEST_PORTS, discard, throwaway_home

RESULTS = Path(__file__).with_name("results.json")
results: dict = {}  # what this run measured, written to bench/results.json


def cpu_s(pidfile: Path, which: str = "both") -> float:
    """CPU seconds (user + system) used so far by a part (``which``: "self"), its children
    ("children": the worker's warehouse loader) or both."""
    pid = pidfile.read_text().split()[0]
    select = {"self": ["-p", pid], "children": ["--ppid", pid], "both": ["--ppid", pid, "-p", pid]}[which]
    out = subprocess.run(["ps", "-o", "times=", *select], capture_output=True, text=True).stdout
    return float(sum(int(x) for x in out.split()))


def rss_mb(pidfile: Path) -> float:
    pid = pidfile.read_text().split()[0]
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", pid, "-p", pid], capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split()) / 1024


def _end_offset(settings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka_client_config(), "group.id": "q2c-bench", "log_level": 0})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


def end_to_end(engagements: int, entries: int, partitions: int = 0, workers: int = 1) -> None:
    from streams.config import Settings
    from streams.stack.manager import Stack
    from streams.stack.worker import FaustWorker
    from streams.testing.firm import Delivery, Firm, eventually
    from streams.testing.load import Load

    home = throwaway_home("q2c-bench-")
    os.environ.update({**TEST_PORTS, "Q2C_HOME": str(home), "Q2C_ENGAGEMENT_PARTITIONS": str(partitions)})
    stack = Stack(Settings())
    t0 = time.monotonic()
    stack.up(say=lambda line: None)
    print(f"q2c up (warm jar cache, empty Q2C_HOME): {time.monotonic() - t0:.1f}s")
    s = stack.s
    extra = [FaustWorker(s, f"worker-{i}", {"Q2C_METRICS_PORT": str(s.metrics_port + 10 + i),
                                             "Q2C_WORKER_WEB_PORT": str(s.worker_web_port + 10 + i)})
             for i in range(1, workers)]
    for worker in extra:
        worker.start()
    if partitions:
        print(f"scaled out: {workers} workers sharing {partitions} engagement partitions")
    try:
        firm = Firm(stack.s)
        psa = Delivery(firm)
        psa.tax("STD", "GB", "20.000")
        load = Load(base=1000, engagements=engagements, entries_per_engagement=entries)
        # set up the engagements first, then time the flood of approved time entries
        Load(base=1000, engagements=engagements, entries_per_engagement=0).run(firm, psa)
        topic_end = lambda: _end_offset(s, "psa.psa.timesheet_entry")  # noqa: E731
        before = topic_end()
        cpu_before = {part.name: cpu_s(part.pidfile) for part in (stack.kafka, stack.connect, stack.worker, *extra, stack.prometheus)}
        started = time.monotonic()
        load.run(firm, psa)
        written = time.monotonic() - started
        eventually(lambda: topic_end() - before >= engagements * entries, timeout=1800, what="every change on Kafka")
        captured = time.monotonic() - started
        eventually(lambda: load.verify(firm)["events"] >= engagements * entries, timeout=1800, what="every event")
        elapsed = time.monotonic() - started
        counts = load.verify(firm)
        n = engagements * entries
        print(f"end to end: {n} approved time entries -> {counts['events']} billing events + {counts['costs']} costs "
              f"in {elapsed:.1f}s = {n / elapsed:,.0f} source changes/s (writing them took {written:.1f}s, Debezium had "
              f"them all on Kafka after {captured:.1f}s); "
              f"lost {counts['lost']}, duplicated {counts['duplicated']}")
        results["end_to_end"] = {"changes": n, "seconds": round(elapsed, 1), "changes_per_s": round(n / elapsed),
                                 "lost": counts["lost"], "duplicated": counts["duplicated"], "parts": {}}
        for part in (stack.kafka, stack.connect, stack.worker, *extra, stack.prometheus):
            rss, cpu = rss_mb(part.pidfile), cpu_s(part.pidfile) - cpu_before[part.name]
            results["end_to_end"]["parts"][part.name] = {"rss_mb": round(rss), "cpu_s": round(cpu)}
            print(f"  RSS {part.name:<10} {rss:7.0f} MB, CPU {cpu:5.0f} s during the run")
        pg = subprocess.run(["ps", "-C", "postgres", "-o", "rss="], capture_output=True, text=True).stdout
        print(f"  RSS {'postgres':<10} {sum(int(x) for x in pg.split()) / 1024:7.0f} MB (all backends)")
    finally:
        for worker in extra:
            worker.stop()
        discard(stack)


def core_changes(engagements: int, entries: int, first: int = 0, tax: bool = True) -> list:
    """The core run's changes: a tax rate (unless ``tax`` is False), then per engagement its
    account, quote, line, project, person and assignment and ``entries`` approved time entries
    (engagements numbered from ``first``)."""
    from streams.capture.envelope import RowChange
    from streams.testing.rows import ROWS

    approved = datetime(2026, 2, 2, 10, tzinfo=UTC)
    changes = []
    lsn = 1000 + first * 100_000
    for e in range(first, first + engagements):
        for base in ROWS[:7]:
            row = dict(base.row)
            key = dict(base.key)
            lsn += 1
            if base.table_id == "crm.account":
                row.update(id=e, account_number=f"ACC-{e}")
                key = {"id": e}
            elif base.table_id == "crm.quote":
                row.update(id=e, quote_number=f"Q-{e}", account_id=e)
                key = {"id": e}
            elif base.table_id == "crm.quote_line":
                row.update(id=e, quote_id=e, quantity="100000")
                key = {"id": e}
            elif base.table_id == "psa.project":
                row.update(id=e, project_code=f"P{e}", crm_quote_number=f"Q-{e}")
                key = {"id": e}
            elif base.table_id == "psa.resource":
                row.update(id=e, employee_no=f"E{e}")
                key = {"id": e}
            elif base.table_id == "psa.assignment":
                row.update(id=e, project_id=e, resource_id=e)
                key = {"id": e}
            else:
                continue
            changes.append(RowChange(base.source, base.schema, base.table, "c", key, row, lsn, None))
        for t in range(entries):
            lsn += 1
            changes.append(time_entry(e, e * 100000 + t, lsn, approved))
    if tax:
        changes.insert(0, RowChange("finance", "finance", "gl_tax_rate", "c", {"tax_cd": "STD", "country_cd": "GB", "valid_from": 0},
                                    {"tax_cd": "STD", "country_cd": "GB", "rate_pct": "20", "valid_from": date(1970, 1, 1)}, 1, None))
    return changes


def time_entry(engagement: int, entry_id: int, lsn: int, approved: datetime, hours: int | None = None):
    """One approved time entry of the core run's engagement ``engagement``."""
    from streams.capture.envelope import RowChange

    return RowChange("psa", "psa", "timesheet_entry", "c", {"id": entry_id}, {
        "id": entry_id, "resource_id": engagement, "project_id": engagement, "work_date": date(2026, 3, 1 + entry_id % 28),
        "hours": str(hours or 1 + entry_id % 8), "billable": True, "status": "approved", "approved_at": approved}, lsn, None)


def core(engagements: int, entries: int, batch: int, scaled: bool = True) -> None:
    from streams.state.engagement_stage import EngagementStage
    from streams.state.mirror import SourceMirror
    from streams.state.processor import Processor
    from streams.state.routing import RouteBook

    changes = core_changes(engagements, entries)
    processor = Processor(SourceMirror())
    started = time.perf_counter()
    written = 0
    for i in range(0, len(changes), batch):
        result = processor.process(changes[i:i + batch])
        written += len(result.erp)
        processor.commit(result)
    elapsed = time.perf_counter() - started
    results["core"] = {"changes": len(changes), "batch": batch, "changes_per_s": round(len(changes) / elapsed)}
    print(f"core: {len(changes)} changes in batches of {batch} -> {written} ERP rows in {elapsed:.2f}s = "
          f"{len(changes) / elapsed:,.0f} changes/s (one core, no I/O)")
    if not scaled:
        return
    # scaled out: the router's share (mirror, touched, routing) and the deriving side's, apart
    router = Processor(SourceMirror(), routes=RouteBook())
    stage = EngagementStage()
    routed, offset, parts = 0.0, 0, []
    for i in range(0, len(changes), batch):
        t = time.perf_counter()
        result = router.process(changes[i:i + batch])
        router.commit(result)
        routed += time.perf_counter() - t
        parts.append([(offset + k, part) for k, part in enumerate(result.bundles)])
        offset += len(result.bundles)
    t = time.perf_counter()
    derived = 0
    for batch_parts in parts:
        result = stage.process(batch_parts)
        derived += len(result.erp)
        stage.commit(result)
    deriving = time.perf_counter() - t
    results["core_scaled_out"] = {"router_changes_per_s": round(len(changes) / routed),
                                  "deriving_changes_per_s": round(len(changes) / deriving)}
    print(f"core scaled out: router {len(changes) / routed:,.0f} changes/s ({offset} bundle parts); "
          f"deriving side {len(changes) / deriving:,.0f} changes/s -> {derived} ERP rows (one core each, no I/O)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engagements", type=int, default=20)
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--core-only", action="store_true")
    parser.add_argument("--no-scaled-core", action="store_true", help="skip the scaled-out stages of the core run")
    parser.add_argument("--partitions", type=int, default=0, help="Q2C_ENGAGEMENT_PARTITIONS (0: one worker does all)")
    parser.add_argument("--workers", type=int, default=1, help="workers to run (scaled out: with --partitions)")
    args = parser.parse_args()
    results["run"] = {"engagements": args.engagements, "entries": args.entries, "batch": args.batch,
                      "partitions": args.partitions, "workers": args.workers,
                      "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
                      "at": datetime.now(UTC).isoformat(timespec="seconds")}
    core(args.engagements, args.entries, args.batch, scaled=not args.no_scaled_core)
    if not args.core_only:
        end_to_end(args.engagements, args.entries, args.partitions, args.workers)
    # other benches' results (bench/state_scale.py) stay; this one's are replaced, measured or not
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept = {k: v for k, v in kept.items() if k not in ("run", "core", "core_scaled_out", "end_to_end")}
    RESULTS.write_text(json.dumps({**kept, **results}, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
