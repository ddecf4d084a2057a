"""A source transaction is applied whole: never half of it, also across a crash of the worker.

The first test drives Debezium for real. The others write Debezium-shaped records into the real
source topics (a copy of a captured change under a transaction whose END is withheld), because a
real transaction cannot be made to lose its END marker."""
import json
from decimal import Decimal as D

import httpx
import pytest
from confluent_kafka import Producer

from streams.canonical import avro
from streams.kafka_io import read_all
from streams.testing.firm import crash_worker, eventually, settle
from tests.scenarios.engagements import consultant_on_time_and_materials, events

pytestmark = pytest.mark.stack


def test_a_quote_approved_with_its_lines_in_one_transaction_never_shows_a_partial_contract(stack, firm, ids):
    n = ids()
    firm.account(n)
    number = f"Q-X{n}"
    lines = 40
    with firm.crm.conn.transaction():  # one source transaction: the quote, approved, and every line
        firm.crm.run(
            "insert into crm.quote (id, quote_number, opportunity_id, account_id, revision, status, commercial_model,"
            " currency, start_date, end_date, discount_pct, total_amount, approved_at, approved_by)"
            " values (%s, %s, %s, %s, 1, 'approved', 'milestone', 'GBP', '2026-11-01', '2027-10-31', 0, 0, now(), 'approver')",
            n, number, n, n)
        for i in range(1, lines + 1):
            firm.line(n * 100 + i, n, i, "milestone", price="1000.10", code=f"M{i}", due="2027-06-30")
    full = D("1000.10") * lines

    first = eventually(lambda: firm.erp.one("select contract_value from erp_inbound.contract where contract_number = %s", number),
                       what="the contract in the ERP")
    assert first["contract_value"] == full, "the ERP saw the contract before all its lines"
    eventually(lambda: len(firm.erp.rows("select 1 from erp_inbound.billing_schedule where contract_number = %s", number)) == lines)
    settle(2)
    published = [avro.decode(m.value())[1] for m in read_all(stack.s, avro.topic_of("contract")) if m.key() == number.encode()]
    assert published and {c["contract_value"] for c in published} == {full}
    schedule_sizes = [m for m in read_all(stack.s, avro.topic_of("schedule_item")) if m.key() == number.encode()]
    assert len(schedule_sizes) == lines  # each item published once: never a first, partial schedule


def _captured(stack, topic: str, row_id: int) -> dict:
    """The change event Debezium wrote for a row (its latest), as JSON."""
    found = [m for m in read_all(stack.s, topic) if m.key() and json.loads(m.key()).get("payload", json.loads(m.key())).get("id") == row_id]
    assert found, f"no change of {topic} id {row_id}"
    return json.loads(found[-1].value())


def _under_withheld_transaction(doc: dict, tx: str, **changes) -> bytes:
    payload = doc.get("payload", doc)  # with its schema or without
    payload["op"] = "u"
    payload["before"] = dict(payload["after"])
    payload["after"].update(changes)
    payload["source"]["lsn"] += 1  # later than the captured change, earlier than any real one after it
    payload["transaction"] = {"id": f"{tx}:{payload['source']['lsn']}", "total_order": 1, "data_collection_order": 1}
    return json.dumps(doc).encode()


def _end_marker(tx: str, table: str, count: int) -> bytes:
    return json.dumps({"schema": None, "payload": {
        "status": "END", "id": f"{tx}:1", "event_count": count,
        "data_collections": [{"data_collection": table, "event_count": count}], "ts_ms": 1}}).encode()


def _time_entry_event(firm, psa, ids):
    n, number, _, _ = consultant_on_time_and_materials(firm, psa, ids)
    eventually(lambda: [e for e in events(firm, number) if e["quantity"] == D("8.00") and e["status"] == "ready"])
    return n, number


def _amounts(firm, number):
    return sorted((e["quantity"], e["status"]) for e in events(firm, number))


def test_a_held_transaction_survives_a_crash_and_is_applied_when_its_end_arrives(stack, firm, psa, ids):
    n, number = _time_entry_event(firm, psa, ids)
    tx = str(900_000_000 + n % 100_000_000)
    producer = Producer(stack.s.kafka_client_config())
    doc = _captured(stack, "psa.psa.timesheet_entry", n)
    key = json.dumps({"id": n}).encode()
    producer.produce("psa.psa.timesheet_entry", key=key, value=_under_withheld_transaction(doc, tx, hours="6.00"))
    producer.flush(10)
    settle(3)
    assert _amounts(firm, number) == [(D("8.00"), "ready")], "applied before its transaction was complete"

    crash_worker(stack)  # the held change must survive: its offset is already committed
    settle(3)
    assert _amounts(firm, number) == [(D("8.00"), "ready")]

    producer.produce("psa.transaction", key=json.dumps({"id": f"{tx}:1"}).encode(),
                     value=_end_marker(tx, "psa.timesheet_entry", 1))
    producer.flush(10)
    eventually(lambda: _amounts(firm, number) == [(D("6.00"), "ready"), (D("8.00"), "reversed")],
               what="the change applied once its END arrived")
    firm.psa.run("update psa.timesheet_entry set hours = 6 where id = %s", n)  # the source agrees again (for reconcile)


def test_a_transaction_that_never_completes_is_applied_after_the_wait(stack, firm, psa, ids):
    n, number = _time_entry_event(firm, psa, ids)
    tx = str(800_000_000 + n % 100_000_000)
    doc = _captured(stack, "psa.psa.timesheet_entry", n)
    producer = Producer(stack.s.kafka_client_config())
    producer.produce("psa.psa.timesheet_entry", key=json.dumps({"id": n}).encode(),
                     value=_under_withheld_transaction(doc, tx, hours="5.00"))
    producer.flush(10)
    eventually(lambda: _amounts(firm, number) == [(D("5.00"), "ready"), (D("8.00"), "reversed")],
               timeout=stack.s.transaction_wait_s + 30, what="the incomplete transaction applied after the wait")
    firm.psa.run("update psa.timesheet_entry set hours = 5 where id = %s", n)  # the source agrees again
    metrics = httpx.get(stack.s.metrics_url, timeout=5).text
    incomplete = [line for line in metrics.splitlines() if line.startswith("q2c_incomplete_transactions_total ")]
    assert incomplete and float(incomplete[0].split()[1]) >= 1
