"""The benchmark suite (``make bench``): run by hand, never in CI. Prints a table and writes the
``suite`` section of ``bench/results.json``: each figure the median of ``--runs`` runs, with the
core count and the git revision.

A run, on a fresh embedded stack:

1. The worker is stopped; a backlog of T&M engagements (approved time entries and expenses,
   ``bench.history``'s generator) is copied into the sources. ``capture_eps``: source rows per
   second until Debezium has every one on Kafka, with nothing else running.
2. ``transform_eps``: those very records (Debezium's JSON) read back from Kafka, then on one core
   in this process: decode → source transactions → mirror and rules → Avro bytes of every
   canonical event. ``transform_floor_us``: of that, what msgspec's JSON parser and fastavro's
   writer alone take a change, so ``transform_ceiling_eps`` is what no transform on this stack
   can exceed.
3. ``baseline_eps``: ``bench.baseline`` (a bare confluent-kafka consumer, the same decode and
   rules, the same ERP writes into a database of its own) over the same backlog.
4. ``catchup_eps``, ``worker_cpu_us_per_change``: the worker starts; source changes per second
   until the ERP holds every billing event, and the worker's CPU per change (its start excluded),
   its own process apart from its child, the warehouse loader (``loader_cpu_us_per_change``,
   until the warehouse holds every event too).
5. ``latency_p50_ms``, ``latency_p99_ms``: once the warehouse loader has caught up too, time
   entries approved at ``--live-rate`` per second, one source transaction each, source commit →
   ERP row.

With ``--workers 2``, one more run per ``--runs`` with ``Q2C_ENGAGEMENT_PARTITIONS=4`` and two
scaled-out workers: ``catchup_eps_2_workers``, with each part's CPU per change.

``recovery_s`` and ``rss_bytes_per_row`` come from ``bench.history`` (``make bench-history``, a
firm's history with a ``kill -9``), as it last wrote them, with its revision."""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.history import _erp_events, _wait, live, write_history
from bench.throughput import RESULTS, cpu_s
from streams.testing.stacks import TEST_PORTS, discard, throwaway_home

TARGETS = {  # the speed targets, as set on the development machine
    "worker_cpu_us_per_change": ("<=", 150), "catchup_eps": (">=", 5000), "faust_vs_baseline": (">=", 0.5),
    "latency_p99_ms": ("<=", 500), "transform_eps": (">=", 50000),
}


def _source_records(settings, topics: list[str]) -> list[tuple[str, bytes | None, bytes | None, int, int]]:
    """Every record now on ``topics``: (topic, key, value, partition, offset)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka_client_config(), "group.id": "q2c-bench-read", "enable.auto.commit": False,
                         "log_level": 0})
    try:
        meta = consumer.list_topics(timeout=10).topics
        parts = [TopicPartition(t, p, 0) for t in topics if t in meta for p in meta[t].partitions]
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        left = sum(ends.values())
        consumer.assign(parts)
        out = []
        while left > 0:
            for msg in consumer.consume(10_000, timeout=5):
                if msg.error() is None:
                    out.append((msg.topic(), msg.key(), msg.value(), msg.partition(), msg.offset()))
                    left -= 1
        return out
    finally:
        consumer.close()


def _on_kafka(settings, topics: list[str]) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka_client_config(), "group.id": "q2c-bench-ends", "log_level": 0})
    try:
        meta = consumer.list_topics(timeout=10).topics
        return sum(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                   for t in topics if t in meta for p in meta[t].partitions)
    finally:
        consumer.close()


def _loader_caught_up(settings) -> bool:
    """The warehouse loader has committed every canonical event: the latency is measured steady,
    not while the worker still loads the backlog into the warehouse."""
    from streams.kafka_io import worker_lag
    from streams.topics import canonical_topics

    return worker_lag(settings, canonical_topics(), f"{settings.app_id}-warehouse") == 0


def transform(records) -> dict:
    """Debezium JSON → canonical model → rules → Avro bytes, on one core, no I/O."""
    from streams.agents.worker import GC_THRESHOLDS
    from streams.canonical.wire import CanonicalWire
    from streams.capture.envelope import Provenance, decode
    from streams.capture.tables import all_mappings
    from streams.capture.transactions import TransactionBuffer
    from streams.config import Settings
    from streams.state.mirror import SourceMirror
    from streams.state.processor import Processor

    wire = CanonicalWire(registry=None)
    processor, buffer = Processor(SourceMirror()), TransactionBuffer(all_mappings(), overdue_after=1e9)
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)  # as the worker collects
    changes = encoded = 0
    events: list = []  # (type, model) of every canonical event, for the floor
    started = time.perf_counter()
    size = Settings().batch_size  # the worker's batches
    for i in range(0, len(records), size):
        ready = []
        for topic, key, value, partition, offset in records[i:i + size]:
            item = decode(topic, key, value, Provenance(topic, partition, offset))
            if item is not None:
                ready.extend(buffer.offer(item, 0.0))
        result = processor.process(ready)
        for event in result.canonical:
            if event.model is not None:
                encoded += len(wire.encode(event.event_type, event.model))
                events.append((event.event_type, event.model))
        processor.commit(result)
        changes += len(ready)
    elapsed = time.perf_counter() - started
    gc.set_threshold(*thresholds)
    return {"changes": changes, "seconds": round(elapsed, 2), "eps": round(changes / elapsed), "avro_bytes": encoded,
            "floor": transform_floor(records, events)}


def transform_floor(records, events: list) -> dict:
    """What the transform spends, per source change, in what it cannot do without: the JSON
    parser over each record's key and value (msgspec, as ``capture.envelope`` calls it), each
    row's canonical model (``TableMapping.to_model``: pydantic's validation, which decides what
    goes to the dead letters) and fastavro's writer over each canonical event, its datum prepared
    beforehand (untimed). No transform on this stack can be faster than ``ceiling_eps``."""
    import io

    import fastavro

    from streams.canonical import avro
    from streams.capture.envelope import Provenance, RowChange, _json, decode
    from streams.capture.tables import mapping_for

    changes = sum(1 for _, _, value, _, _ in records if value is not None)
    started = time.perf_counter()
    for _, key, value, _, _ in records:
        if key is not None:
            _json(key)
        if value is not None:
            _json(value)
    json_s = time.perf_counter() - started
    rows = []
    for topic, key, value, partition, offset in records:
        item = decode(topic, key, value, Provenance(topic, partition, offset))
        if isinstance(item, RowChange) and item.row is not None:
            rows.append((mapping_for(item), item.row))
    started = time.perf_counter()
    for mapping, row in rows:
        mapping.to_model(row)
    model_s = time.perf_counter() - started
    data = []
    for event_type, model in events:
        schema, prepared = avro.prepared_writer(event_type)
        record = dict(model.__dict__)
        for name, prepare in prepared:
            record[name] = prepare(record[name])
        data.append((schema, record))
    started = time.perf_counter()
    for schema, record in data:
        fastavro.schemaless_writer(io.BytesIO(), schema, record)
    avro_s = time.perf_counter() - started
    floor_us = (json_s + model_s + avro_s) / changes * 1e6
    return {"records": changes, "events": len(events), "json_us_per_change": round(json_s / changes * 1e6, 2),
            "model_us_per_change": round(model_s / changes * 1e6, 2),
            "avro_us_per_change": round(avro_s / changes * 1e6, 2), "floor_us_per_change": round(floor_us, 2),
            "ceiling_eps": round(1e6 / floor_us)}


def _stack(partitions: int):
    from streams.config import Settings
    from streams.stack.manager import Stack

    home = throwaway_home("q2c-bench-")
    os.environ.update({**TEST_PORTS, "Q2C_HOME": str(home), "Q2C_ENGAGEMENT_PARTITIONS": str(partitions)})
    stack = Stack(Settings())
    stack.up(say=lambda line: None, with_worker=False)
    return stack


def _plan(args) -> list[tuple[int, int, int]]:
    return [(10_000 + k, args.entries, args.expenses) for k in range(args.engagements)]


def one_run(args) -> dict:
    from streams.stack.postgres import SYSTEMS_DIR
    from streams.testing.firm import database_for_sync
    from streams.topics import source_topics

    stack = _stack(0)
    s, out = stack.s, {}
    try:
        plan = _plan(args)
        numbers, events = [f"Q-H{n}" for n, _, _ in plan], sum(e + x for _, e, x in plan)
        table_topics = [t for t in source_topics() if not t.endswith(".transaction")]
        before = _on_kafka(s, table_topics)
        t0 = time.monotonic()
        rows = sum(write_history(s, plan[0][0], plan, args.chunk).values())
        _wait("every source row on Kafka", lambda: _on_kafka(s, table_topics) - before >= rows, 1800, 0.2)
        out["capture_eps"] = rows / (time.monotonic() - t0)  # from the first source commit
        out["rows"] = rows

        records = _source_records(s, source_topics())
        out["transform"] = transform(records)
        del records

        erp_dsn = database_for_sync(s, "erp_baseline", (SYSTEMS_DIR / "erp.sql").read_text())
        done = subprocess.run([sys.executable, "-m", "bench.baseline", "--erp-dsn", erp_dsn, "--until-events", str(events),
                               "--numbers", ",".join(numbers)], capture_output=True, text=True, timeout=3600,
                              env={**os.environ})
        if done.returncode != 0:
            raise RuntimeError(f"the baseline failed: {done.stderr[-2000:]}")
        out["baseline"] = json.loads(done.stdout.strip().splitlines()[-1])

        started = time.monotonic()
        stack.worker.start()
        # the Faust worker's own process, and apart from it its child, the warehouse loader
        cpu0, loader0 = cpu_s(stack.worker.pidfile, "self"), cpu_s(stack.worker.pidfile, "children")
        caught = _wait("every billing event in the ERP", lambda: _erp_events(s, numbers) >= events, 7200, 0.5)
        cpu = cpu_s(stack.worker.pidfile, "self") - cpu0
        out["catchup"] = {"seconds": round(caught, 1), "eps": round(rows / caught), "worker_cpu_s": cpu,
                          "worker_cpu_us_per_change": round(cpu / rows * 1e6),
                          "start_s": round(time.monotonic() - started - caught, 1)}
        loaded = _wait("the warehouse loader caught up", lambda: _loader_caught_up(s), 3600, 1.0)
        out["catchup"]["warehouse_after_s"] = round(loaded, 1)  # beyond the ERP's catch-up
        out["catchup"]["loader_cpu_us_per_change"] = round((cpu_s(stack.worker.pidfile, "children") - loader0) / rows * 1e6)
        out["latency"] = live(s, stack, plan[0][0], args.live_rate, args.live_seconds, None, run=1)
    finally:
        discard(stack)
    return out


def scaled_run(args) -> dict:
    """The same backlog caught up by two scaled-out workers (four engagement partitions)."""
    from streams.stack.worker import FaustWorker

    stack = _stack(4)
    s = stack.s
    second = FaustWorker(s, "worker-2", {"Q2C_METRICS_PORT": str(s.metrics_port + 12),
                                         "Q2C_WORKER_WEB_PORT": str(s.worker_web_port + 12)})
    try:
        plan = _plan(args)
        numbers, events = [f"Q-H{n}" for n, _, _ in plan], sum(e + x for _, e, x in plan)
        rows = sum(write_history(s, plan[0][0], plan, args.chunk).values())
        time.sleep(5)
        parts = (stack.kafka, stack.connect)
        cpu0 = {p.name: cpu_s(p.pidfile) for p in parts}
        started = time.monotonic()
        stack.worker.start()
        second.start()
        workers = {w.name: cpu_s(w.pidfile) for w in (stack.worker, second)}
        caught = _wait("every billing event in the ERP", lambda: _erp_events(s, numbers) >= events, 7200, 0.5)
        cpu = {**{name: cpu_s(w.pidfile) - workers[name] for name, w in (("worker", stack.worker), ("worker-2", second))},
               **{p.name: cpu_s(p.pidfile) - cpu0[p.name] for p in parts}}
        return {"seconds": round(caught, 1), "eps": round(rows / caught), "rows": rows,
                "cpu_us_per_change": {k: round(v / rows * 1e6) for k, v in cpu.items()},
                "start_s": round(time.monotonic() - started - caught, 1)}
    finally:
        second.stop()
        discard(stack)


def _median(values):
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engagements", type=int, default=100)
    parser.add_argument("--entries", type=int, default=900)
    parser.add_argument("--expenses", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=2000, help="rows per source transaction of the backlog")
    parser.add_argument("--live-rate", type=float, default=500.0)
    parser.add_argument("--live-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="2: also catch up with two scaled-out workers")
    args = parser.parse_args()

    runs, scaled = [], []
    for k in range(args.runs):
        runs.append(one_run(args))
        print(f"run {k + 1}: {json.dumps(runs[-1])}", flush=True)
        if args.workers == 2:
            scaled.append(scaled_run(args))
            print(f"scaled-out run {k + 1}: {json.dumps(scaled[-1])}", flush=True)

    suite = {
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "dirty": bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                     text=True).stdout.strip()),
        "cores": os.cpu_count(), "runs": args.runs, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backlog_changes": runs[0]["rows"], "live_rate": args.live_rate,
        "transform_eps": _median([r["transform"]["eps"] for r in runs]),
        "transform_floor_us": _median([r["transform"]["floor"]["floor_us_per_change"] for r in runs]),
        "transform_ceiling_eps": _median([r["transform"]["floor"]["ceiling_eps"] for r in runs]),
        "catchup_eps": _median([r["catchup"]["eps"] for r in runs]),
        "worker_cpu_us_per_change": _median([r["catchup"]["worker_cpu_us_per_change"] for r in runs]),
        "loader_cpu_us_per_change": _median([r["catchup"]["loader_cpu_us_per_change"] for r in runs]),
        "baseline_eps": _median([r["baseline"]["changes_per_s"] for r in runs]),
        "baseline_cpu_us_per_change": _median([round(r["baseline"]["cpu_s"] / r["rows"] * 1e6) for r in runs]),
        "latency_p50_ms": _median([round(r["latency"]["p50_ms"]) for r in runs]),
        "latency_p99_ms": _median([round(r["latency"]["p99_ms"]) for r in runs]),
        "capture_eps": _median([round(r["capture_eps"]) for r in runs]),
    }
    suite["faust_vs_baseline"] = round(suite["catchup_eps"] / suite["baseline_eps"], 3)
    if scaled:
        suite["catchup_eps_2_workers"] = _median([r["eps"] for r in scaled])
        suite["cpu_us_per_change_2_workers"] = {part: _median([r["cpu_us_per_change"][part] for r in scaled])
                                                for part in scaled[0]["cpu_us_per_change"]}
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    history = kept.get("history", {})
    suite["recovery_s"] = history.get("restart_to_erp_s")
    suite["rss_bytes_per_row"] = history.get("rss_bytes_per_row")
    suite["history_git"] = history.get("git")
    suite["each_run"] = {"one_worker": runs, "two_workers": scaled}
    RESULTS.write_text(json.dumps({**kept, "suite": suite}, indent=2) + "\n")

    print(f"\n{'figure':<28}{'value':>14}  target   ({suite['cores']} cores, {suite['git']}, median of {args.runs})")
    for key, value in suite.items():
        if key in ("each_run", "at", "git", "cores", "runs", "dirty", "cpu_us_per_change_2_workers"):
            continue
        op, target = TARGETS.get(key, ("", ""))
        met = "" if not op or value is None else ("  met" if (value <= target if op == "<=" else value >= target) else "  not met")
        print(f"{key:<28}{value if value is not None else '-':>14}  {op}{target}{met}")
    if scaled:
        print(f"CPU per change with two workers (us): {suite['cpu_us_per_change_2_workers']}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
