"""Bad input and failures that cannot be retried go to the dead-letter topic with their reason
and origin; processing goes on; once the cause is fixed, `q2c dlq replay` re-drives them."""
import json

import httpx
import pytest
from confluent_kafka import Producer

from streams.testing.firm import crash_worker, eventually
from tests.commands import q2c

pytestmark = pytest.mark.stack


def letters() -> list[dict]:
    result = q2c("dlq", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def approve_quote(firm, n, number):
    firm.account(n)
    firm.quote(n, n, number, "fixed_fee", "2026-11-01", "2027-01-31")
    firm.line(n * 10 + 1, n, 1, "fixed_fee", price="3000")
    firm.approve(n)


def test_malformed_and_invalid_envelopes_are_dead_lettered_and_processing_goes_on(stack, firm, ids):
    n = ids()
    producer = Producer(stack.s.kafka_client_config())
    producer.produce("psa.psa.timesheet_entry", key=b'{"id": %d}' % n, value=b"{not json")
    invalid = {"payload": {"op": "c", "before": None, "source": {"lsn": 1, "schema": "psa", "table": "timesheet_entry"},
                           "after": {"id": n, "resource_id": 1, "project_id": 1, "work_date": 20000, "hours": "8",
                                     "billable": True, "status": "teleported"}}}
    producer.produce("psa.psa.timesheet_entry", key=b'{"id": %d}' % (n + 1), value=json.dumps(invalid).encode())
    producer.flush(10)
    approve_quote(firm, n + 2, f"Q-D{n}")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", f"Q-D{n}"),
               what="processing after bad input")
    keys = (f'{{"id": {n}}}', f'{{"id": {n + 1}}}')
    by_key = eventually(lambda: (found := {d["key"]: d for d in letters() if d["key"] in keys}) and len(found) == 2 and found,
                        what="both bad events in the dead-letter topic")
    bad_json = by_key[f'{{"id": {n}}}']
    assert bad_json["reason"] == "undecodable" and "not JSON" in bad_json["error"]
    assert bad_json["source_topic"] == "psa.psa.timesheet_entry" and bad_json["source_offset"].isdigit()
    bad_enum = by_key[f'{{"id": {n + 1}}}']
    assert bad_enum["reason"] == "invalid_row" and "status" in bad_enum["error"] and bad_enum["source_lsn"] == "1"
    shown = q2c("dlq", "show", bad_enum["id"], "--json")
    assert json.loads(shown.stdout)["value"] == json.dumps(invalid)


def test_a_sink_failure_is_dead_lettered_and_replayed_once_fixed(stack, firm, ids):
    n = ids()
    number = f"Q-F{n}"
    firm.erp.run(f"""
        create or replace function erp_inbound.refuse_{n}() returns trigger language plpgsql as $$
        begin raise exception 'contract % refused by the ERP', new.contract_number; end $$;
        create trigger refuse_{n} before insert on erp_inbound.contract for each row
          when (new.contract_number = '{number}') execute function erp_inbound.refuse_{n}();""")
    try:
        approve_quote(firm, n, number)
        failed = eventually(lambda: [d for d in letters() if number in d["error"] and not d["replayed_at"]],
                            what="the refused quote in the dead-letter topic")
        assert {d["reason"] for d in failed} == {"processing_error"}
        later = f"Q-G{n}"
        approve_quote(firm, n + 1, later)
        eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", later))
        assert firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", number) is None
    finally:
        firm.erp.run(f"drop trigger if exists refuse_{n} on erp_inbound.contract")
    crash_worker(stack)  # a worker that no longer remembers the letter's source transaction
    for letter in failed:
        assert q2c("dlq", "replay", letter["id"]).returncode == 0
    contract = eventually(lambda: firm.erp.one("select * from erp_inbound.contract where contract_number = %s", number),
                          what="the contract after replay")
    assert contract["contract_value"] == 3000
    assert all(d["replayed_at"] for d in letters() if d["id"] in {f["id"] for f in failed})
    # applied at once, not held waiting for an END marker that passed long ago
    metrics = httpx.get(stack.s.metrics_url, timeout=5).text
    assert not [line for line in metrics.splitlines() if line.startswith("q2c_incomplete_transactions_total ")
                and float(line.split()[1]) > 0]


def test_consume_prints_canonical_events_as_json_lines(stack, firm, ids):
    n = ids()
    approve_quote(firm, n, f"Q-C{n}")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", f"Q-C{n}"))
    result = q2c("consume", "q2c.canonical.contract")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [r for r in records if r["key"] == f"Q-C{n}"]
    assert mine and mine[-1]["type"] == "contract" and mine[-1]["value"]["contract_value"] == "3000.00"


def test_a_source_column_added_or_dropped_mid_stream(stack, firm, psa, ids):
    """The firm's DBA changes a captured table while the sync runs: an added column is carried
    along and ignored; a dropped optional column is read as absent; a dropped required one sends
    the rows to the dead-letter topic with the missing field named, and processing goes on."""
    n = ids()
    number = f"Q-X{n}"
    firm.account(n)
    firm.quote(n, n, number, "time_and_materials", "2026-01-01", "2026-12-31")
    firm.line(n * 10 + 1, n, 1, "role_rate", qty="100", price="100", role="CONS")
    firm.line(n * 10 + 2, n, 2, "expense_allowance", price="1000")
    firm.approve(n)
    pid = psa.project_of(number)["id"]
    psa.resource(n)
    firm.psa.run("alter table psa.expense_line add column if not exists approver_note text")
    firm.psa.run("alter table psa.expense_line drop column if exists receipt_id")
    psa.expense(n, pid, n, "100.00")
    event = eventually(lambda: firm.erp.one("select * from erp_inbound.billing_event where source_ref = %s", f"psa.expense_line:{n}"))
    assert event["status"] == "ready" and event["amount"] == 100
    firm.psa.run("alter table psa.assignment rename column role_code to role_cd")
    try:
        firm.psa.run("insert into psa.assignment (id, project_id, resource_id, role_cd, planned_hours, start_date, end_date)"
                     " values (%s, %s, %s, 'CONS', 10, '2026-01-01', '2026-12-31')", n, pid, n)
        letter = eventually(lambda: [d for d in letters() if d["key"] == f'{{"id":{n}}}' and d["source_topic"] == "psa.psa.assignment"],
                            what="the assignment without role_code dead-lettered")[0]
        assert letter["reason"] == "invalid_row" and "role_code" in letter["error"]
    finally:
        firm.psa.run("alter table psa.assignment rename column role_cd to role_code")
    psa.expense(n + 1, pid, n, "50.00")  # processing goes on
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.billing_event where source_ref = %s", f"psa.expense_line:{n + 1}"))


def test_an_unreadable_canonical_event_is_dead_lettered_by_the_warehouse_loader_and_loading_goes_on(stack, firm, ids):
    n = ids()
    producer = Producer(stack.s.kafka_client_config())
    key = f"Q-W{n}"
    producer.produce("q2c.canonical.contract", key=key.encode(), value=b"\xc3\x01not avro",
                     headers=[("q2c.type", b"contract"), ("q2c.contract", key.encode())])
    producer.flush(10)
    approve_quote(firm, n, f"Q-WL{n}")  # written after it: reaches the warehouse only if the loader went on
    eventually(lambda: firm.warehouse.one("select 1 from dw.contract where contract_number = %s", f"Q-WL{n}"),
               what="the warehouse loading after the unreadable event")
    letter = eventually(lambda: next((d for d in letters() if d["key"] == key), None),
                        what="the unreadable event in the dead-letter topic")
    assert letter["reason"] == "undecodable" and letter["source_topic"] == "q2c.canonical.contract"
