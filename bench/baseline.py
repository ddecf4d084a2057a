"""The bare loop the worker is measured against (``faust_vs_baseline`` in ``make bench``): a
confluent-kafka consumer → the same decode, source-transaction buffer and rules → the same ERP
writes, into an ERP database of its own. No Faust, no changelogs, no canonical topics, no
warehouse, no PSA or CRM writes: what the worker does besides is what its durability and its
other sinks cost.

Run as its own process, so that its CPU can be read apart from the bench's:
``python -m bench.baseline --erp-dsn DSN --until-events N --numbers Q-H1,Q-H2,...``. It reads the
source topics from their start under a group of its own and prints one JSON line when the ERP
database holds ``N`` billing events of those contracts."""
from __future__ import annotations

import argparse
import gc
import json
import time
import uuid

import psycopg
from confluent_kafka import Consumer

from streams.agents.worker import GC_THRESHOLDS
from streams.capture.envelope import Provenance, RowChange, decode
from streams.capture.tables import all_mappings
from streams.capture.transactions import TransactionBuffer
from streams.config import Settings
from streams.sinks import erp as erp_sink
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.topics import source_topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--erp-dsn", required=True)
    parser.add_argument("--until-events", type=int, required=True)
    parser.add_argument("--numbers", required=True, help="the contracts whose billing events are counted, comma-separated")
    args = parser.parse_args()
    gc.set_threshold(*GC_THRESHOLDS)  # as the worker collects
    numbers = args.numbers.split(",")
    settings = Settings()
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"q2c-baseline-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 3})
    consumer.subscribe(source_topics())
    processor = Processor(SourceMirror())
    buffer = TransactionBuffer(all_mappings(), overdue_after=120)
    erp = psycopg.connect(args.erp_dsn, autocommit=True)
    started, cpu0, changes = time.monotonic(), time.process_time(), 0
    try:
        while True:
            records = consumer.consume(settings.batch_size, timeout=0.5)  # the worker's batches
            ready: list[RowChange] = []
            now = time.monotonic()
            for record in records:
                if record.error() is not None:
                    continue
                item = decode(record.topic(), record.key(), record.value(),
                              Provenance(record.topic(), record.partition(), record.offset()))
                if item is not None:
                    ready.extend(buffer.offer(item, now))
            if ready:
                changes += len(ready)
                result = processor.process(ready)
                if len(result.erp):
                    erp_sink.write(erp, result.erp)
                processor.commit(result)
                consumer.commit(asynchronous=True)
            elif not records:
                held = erp.execute("select count(*) from erp_inbound.billing_event where contract_number = any(%s)",
                                   (numbers,)).fetchone()[0]
                if held >= args.until_events:
                    break
    finally:
        consumer.close()
        erp.close()
    elapsed = time.monotonic() - started - 0.5  # the last, empty poll
    cpu = time.process_time() - cpu0  # the loop's, not the imports'
    print(json.dumps({"changes": changes, "seconds": round(elapsed, 2), "changes_per_s": round(changes / elapsed),
                      "cpu_s": round(cpu, 2)}))


if __name__ == "__main__":
    main()
