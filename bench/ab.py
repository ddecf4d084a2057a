"""Two revisions' catch-up, side by side (``make bench-ab A=REV B=REV``; ``--scaled``: two
scaled-out workers, as ``make bench``'s second half): run by hand, never in CI.

The machine's speed drifts between runs of the same code (by a fifth within a session, by half
between hosts), so a change is judged only against its base measured beside it. Each revision is
checked out in a git worktree of its own; then, round after round, each revision's worker catches
up on the suite's backlog (``bench.history``'s generator, a fresh embedded stack per run) and the
run prints changes a second and the worker's CPU a change. Revisions run alternately, so a drift
during the session falls on both.

A run uses this file's single-run mode (``--one``) with the revision's worktree first on the path
and as the working directory: the worker the stack spawns (``python -m streams.cli worker``) runs
that revision's code. The single run reads ``bench.suite`` and ``bench.history`` of the revision, so
both revisions must have them as they are now."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def one(args: argparse.Namespace) -> dict:
    """One catch-up of the suite's backlog (``args``: its engagements, entries, expenses, chunk)
    on a fresh stack: source changes a second until the ERP holds every billing event, and the
    worker's own CPU a change (its start excluded)."""
    from bench.history import _erp_events, _wait, write_history
    from bench.suite import _on_kafka, _plan, _stack
    from bench.throughput import cpu_s
    from streams.testing.stacks import discard
    from streams.topics import source_topics

    stack = _stack(0)
    s = stack.s
    try:
        plan = _plan(args)
        numbers, events = [f"Q-H{n}" for n, _, _ in plan], sum(e + x for _, e, x in plan)
        table_topics = [t for t in source_topics() if not t.endswith(".transaction")]
        before = _on_kafka(s, table_topics)
        rows = sum(write_history(s, plan[0][0], plan, args.chunk).values())
        _wait("every source row on Kafka", lambda: _on_kafka(s, table_topics) - before >= rows, 1800, 0.2)
        stack.worker.start()
        cpu0 = cpu_s(stack.worker.pidfile, "self")
        caught = _wait("every billing event in the ERP", lambda: _erp_events(s, numbers) >= events, 7200, 0.5)
        cpu = cpu_s(stack.worker.pidfile, "self") - cpu0
        return {"rows": rows, "seconds": round(caught, 1), "eps": round(rows / caught),
                "worker_cpu_us_per_change": round(cpu / rows * 1e6)}
    finally:
        discard(stack)


def _worktree(rev: str, under: Path) -> Path:
    path = under / rev.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("revisions", nargs="*", help="two git revisions: the base, then the change")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--engagements", type=int, default=100)
    parser.add_argument("--entries", type=int, default=900)
    parser.add_argument("--expenses", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=2000, help="rows per source transaction")
    parser.add_argument("--scaled", action="store_true", help="two scaled-out workers catch up (bench.suite.scaled_run)")
    parser.add_argument("--one", action="store_true", help="one catch-up of the code on the path (used by the runner)")
    args = parser.parse_args()
    if args.one:
        if args.scaled:
            from bench.suite import scaled_run

            print(json.dumps(scaled_run(args)), flush=True)
        else:
            print(json.dumps(one(args)), flush=True)
        return
    if len(args.revisions) != 2:
        parser.error("give two revisions: the base, then the change")

    under = Path(tempfile.mkdtemp(prefix="q2c-ab-"))
    trees = {rev: _worktree(rev, under) for rev in args.revisions}
    runs: dict[str, list[dict]] = {rev: [] for rev in args.revisions}
    try:
        for k in range(args.rounds):
            for rev, tree in trees.items():
                done = subprocess.run(
                    [sys.executable, str(HERE), "--one", "--engagements", str(args.engagements), "--entries", str(args.entries),
                     "--expenses", str(args.expenses), "--chunk", str(args.chunk), *(["--scaled"] if args.scaled else [])],
                    cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, timeout=7200)
                if done.returncode != 0:
                    raise RuntimeError(f"{rev}: the run failed: {done.stderr[-2000:]}")
                runs[rev].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {k + 1} {rev:>12}: {json.dumps(runs[rev][-1])}", flush=True)
                time.sleep(2)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(under, ignore_errors=True)
    for rev, results in runs.items():
        cpu = [r.get("worker_cpu_us_per_change", r.get("cpu_us_per_change")) for r in results]
        print(f"{rev:>12}: changes/s {' / '.join(str(r['eps']) for r in results)} (median "
              f"{statistics.median(r['eps'] for r in results):,.0f}); CPU µs a change {' / '.join(map(str, cpu))}")


if __name__ == "__main__":
    main()
