"""What a derivation writes, shared by the capture agent and (scaled out) the engagement agent:
canonical events to their topics, the audit records of the sinks' writes, rows to the ERP, PSA and
CRM sinks, and ledger rows to a table."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, MutableMapping
from typing import Any

from streams.agents import metrics
from streams.agents.batch import BatchHandler
from streams.agents.table_entry import put_or_remove
from streams.canonical import avro
from streams.canonical.wire import CanonicalWire
from streams.sinks import crm as crm_sink
from streams.sinks import erp as erp_sink
from streams.sinks import psa as psa_sink
from streams.state.audit import encode_many
from streams.state.ledger import Ledger
from streams.state.processor import BatchResult
from streams.topics import AUDIT, COMMITTED_HEADER


def publish(handler: BatchHandler, wire: CanonicalWire, result: BatchResult) -> None:
    """The ``publish`` step of a derivation's commit: its canonical events and audit records
    queued on the handler's producer."""
    produce_canonical(handler, wire, result)
    produce_audit(handler, result)


def produce_canonical(handler: BatchHandler, wire: CanonicalWire, result: BatchResult) -> None:
    """Queue the batch's canonical events on the handler's producer (the caller flushes)."""
    producer = handler.kafka_producer()
    published: Counter[str] = Counter()
    for event in result.canonical:
        headers = [("q2c.type", event.event_type)]
        if event.ref:
            headers.append(("q2c.ref", event.ref))
        if event.contract:
            headers.append(("q2c.contract", event.contract))
        if event.committed_at is not None:  # the warehouse loader's latency from the source commit
            headers.append((COMMITTED_HEADER, f"{event.committed_at.timestamp():.3f}"))
        value = wire.encode(event.event_type, event.model) if event.model is not None else None
        producer.produce(avro.topic_of(event.event_type), key=event.key.encode(), value=value, headers=headers)
        published[event.event_type] += 1
    for event_type, count in published.items():
        metrics.CANONICAL.labels(event_type).inc(count)


def produce_audit(handler: BatchHandler, result: BatchResult) -> None:
    """Queue the batch's audit records (the caller flushes, before the batch counts as done: a
    crash before that does the batch again, and the same records again)."""
    producer = handler.kafka_producer()
    for value in encode_many(result.audit):
        producer.produce(AUDIT, value=value)
    if result.audit:
        metrics.AUDIT_RECORDS.inc(len(result.audit))


def write_sinks(handler: BatchHandler, result: BatchResult) -> None:
    """ERP, PSA provisioning and CRM account financials, each retried until written."""
    if len(result.erp):
        handler.sinks.write("ERP write", "erp", lambda c: erp_sink.write(c, result.erp))
        for table, rows in (("contract", result.erp.contracts), ("billing_schedule", result.erp.schedule),
                            ("billing_event", result.erp.events), ("project_cost", result.erp.costs),
                            ("receivable", result.erp.receivables)):
            if rows:
                metrics.SINK_ROWS.labels("erp", table).inc(len(rows))
    if result.provisions:
        handler.sinks.write("PSA provisioning", "psa", lambda c: psa_sink.write(c, result.provisions))
        metrics.SINK_ROWS.labels("psa", "project").inc(len(result.provisions))
    if result.financials:
        handler.sinks.write("CRM account financials", "crm", lambda c: crm_sink.write(c, result.financials))
        metrics.SINK_ROWS.labels("crm", "account_financials").inc(len(result.financials))


def persist_ledger(table: MutableMapping, rows: dict[str, Any],
                   put: Callable[[MutableMapping, str, Any], None] = put_or_remove) -> None:
    """Ledger rows into their table (None removes one); ``put`` writes one entry when the table's
    partition is not Faust's choice."""
    for key, row in rows.items():
        put(table, key, Ledger.persisted(row) if row is not None else None)
