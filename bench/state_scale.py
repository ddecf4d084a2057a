"""The state layer at a firm's volumes, run by hand (`make bench-state`): the mirror and the ledger
on RocksDB (Faust's RocksDB options, as the worker opens its tables), read on demand through their
caches, driven by the pure core (``Processor``) without Kafka, Faust or sinks.

1. Load: ``--engagements`` x ``--entries`` approved time entries (and ``--long``, one engagement
   of that many) through ``Processor`` in batches; reported: changes/s, the process's RSS before
   and after (``/proc/self/statm`` after a collection) and per source row held.
2. Restart: a new process opens the same databases and derives one new time entry of a short
   engagement and one of the long one (their books are gone: derived in full once), then one more
   of each (from their books). Reported: time to open, to each result, and the new process's RSS.

What it leaves out, measured in ``bench/history.py`` instead: Faust's start, the group join and
the changelog tail, the sinks.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.throughput import core_changes, time_entry

APPROVED = datetime(2026, 2, 2, 10, tzinfo=UTC)
LONG = 99_999  # the long engagement's number (short ones count from 0)


def rss_bytes() -> int:
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RocksBackend:
    """One RocksDB database of the bytes the codecs write, opened with the worker's table options."""

    def __init__(self, path: Path):
        from faust.stores.rocksdb import RocksDBOptions

        from streams.agents.table_store import OPTIONS

        options = {k: v for k, v in OPTIONS.items() if k != "driver"}
        self.db = RocksDBOptions(use_rocksdict=True, **options).open(path)

    def get(self, key: str) -> Any | None:
        return self.db.get(key.encode())

    def put(self, key: str, doc: Any) -> None:
        self.db.put(key.encode(), doc)

    def delete(self, key: str) -> None:
        self.db.delete(key.encode())

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        start = prefix.encode()
        for key, value in self.db.items(from_key=start):
            if not key.startswith(start):
                return
            yield key.decode(), value

    def close(self) -> None:
        self.db.close()


def open_state(directory: Path, cache_rows: int):
    from streams.state.ledger import Ledger, LedgerCodec
    from streams.state.mirror import MirrorCodec, SourceMirror
    from streams.state.processor import Processor
    from streams.state.store import CachedStore

    backends = RocksBackend(directory / "mirror"), RocksBackend(directory / "ledger")
    mirror = SourceMirror(store=CachedStore(backends[0], MirrorCodec(), cache_rows))
    processor = Processor(mirror, Ledger(CachedStore(backends[1], LedgerCodec(), cache_rows)))
    return processor, backends


def batches(args) -> Iterator[list]:
    pending: list = []
    plan = [(e, args.entries, args.batch) for e in range(args.engagements)]
    if args.long:
        plan.append((LONG, args.long, args.long_batch))
    for number, (e, entries, size) in enumerate(plan):
        for change in core_changes(1, entries, first=e, tax=number == 0):
            pending.append(change)
            if len(pending) >= size:
                yield pending
                pending = []
    if pending:
        yield pending


def load(args) -> dict:
    directory = Path(args.dir)
    processor, backends = open_state(directory, args.cache_rows)
    processor.mirror.ensure_indexes()
    base = rss_bytes()
    started, cpu0 = time.perf_counter(), time.process_time()
    changes = written = 0
    curve = []  # (changes applied, RSS MB): does memory grow with the rows held, or level off?
    for batch in batches(args):
        result = processor.process(batch)
        processor.commit(result)
        changes += len(batch)
        written += len(result.erp)
        if changes // 100_000 > len(curve):
            curve.append((changes, round(rss_bytes() / 2**20)))
            print(f"  {changes:>9,} changes: RSS {curve[-1][1]} MB", flush=True)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    rows = args.engagements * (6 + args.entries) + (6 + args.long if args.long else 0) + 1
    after = rss_bytes()
    for backend in backends:
        backend.close()
    out = {"changes": changes, "erp_rows": written, "seconds": round(elapsed, 1), "changes_per_s": round(changes / elapsed),
           "cpu_us_per_change": round(cpu / changes * 1e6), "rows_held": rows, "rss_base_mb": round(base / 2**20),
           "rss_after_mb": round(after / 2**20), "rss_bytes_per_row": round((after - base) / rows),
           "rss_curve_mb": curve, "disk_mb": round(sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 2**20)}
    print(f"load: {changes:,} changes -> {written:,} ERP rows in {elapsed:.1f}s = {changes / elapsed:,.0f} changes/s, "
          f"{out['cpu_us_per_change']} us CPU per change; RSS {out['rss_base_mb']} MB -> {out['rss_after_mb']} MB "
          f"with {rows:,} source rows held = {out['rss_bytes_per_row']} B per row; {out['disk_mb']} MB on disk")
    return out


def restart(args) -> dict:
    t0 = time.perf_counter()
    processor, _ = open_state(Path(args.dir), args.cache_rows)
    indexed = processor.mirror.ensure_indexes()
    opened = time.perf_counter() - t0
    out: dict = {"open_s": round(opened, 3), "indexed": indexed}
    lsn = 10**12 + time.time_ns() // 1000  # after every change written before, by this run or an earlier one
    engagements = ([("short", 0)] if args.engagements else []) + ([("long", LONG)] if args.long else [])
    for round_ in ("cold", "warm"):
        for name, e in engagements:
            lsn += 1
            t = time.perf_counter()
            result = processor.process([time_entry(e, lsn, lsn, APPROVED)])  # a new entry: its id is unique
            processor.commit(result)
            took = time.perf_counter() - t
            assert len(result.erp.events) >= 1, "the new entry's billing event"
            out[f"{name}_{round_}_s"] = round(took, 3)
    out["rss_mb"] = round(rss_bytes() / 2**20)
    print(f"restart: state opened in {opened:.2f}s ({indexed} rows indexed); a new entry derived: " +
          ", ".join(f"{k[:-2]} {v:.3f}s" for k, v in out.items() if k.endswith(("_cold_s", "_warm_s"))) +
          f"; RSS {out['rss_mb']} MB")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engagements", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=450)
    parser.add_argument("--long", type=int, default=100_000, help="one engagement of this many entries (0: none)")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--long-batch", type=int, default=2000, help="batch size of the long engagement's entries")
    parser.add_argument("--cache-rows", type=int, default=20_000, help="Q2C_STATE_CACHE_ROWS")
    parser.add_argument("--dir", help="where the databases go (default: a new temporary folder)")
    parser.add_argument("--restart", action="store_true", help="(internal) the restart phase on --dir")
    args = parser.parse_args()
    if args.restart:
        print("RESULT " + json.dumps(restart(args)))
        return
    made = args.dir is None  # a folder of its own goes once measured (a million rows: gigabytes)
    args.dir = args.dir or tempfile.mkdtemp(prefix="q2c-bench-state-")
    try:
        results = {"load": load(args)}
        cmd = [sys.executable, "-m", "bench.state_scale", "--restart", "--dir", args.dir, "--engagements", str(args.engagements),
               "--entries", str(args.entries), "--long", str(args.long), "--cache-rows", str(args.cache_rows)]
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    finally:
        if made:
            shutil.rmtree(args.dir, ignore_errors=True)
    print("\n".join(line for line in lines if not line.startswith("RESULT ")))
    results["restart"] = json.loads(next(line for line in lines if line.startswith("RESULT "))[len("RESULT "):])
    saved = Path(__file__).with_name("results.json")
    doc = json.loads(saved.read_text()) if saved.exists() else {}
    doc["state_scale"] = {"args": {k: getattr(args, k) for k in ("engagements", "entries", "long", "batch", "cache_rows")},
                          "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
                          **results}
    saved.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
