"""The first flow through the real pipeline: a quote written in the CRM database, captured by
Debezium, processed by the Faust worker, lands in the ERP (and provisions the PSA project)."""
from decimal import Decimal as D

import pytest
from confluent_kafka import Consumer

from streams.canonical import avro
from streams.rules.ids import trace_id
from streams.testing.firm import eventually, settle

pytestmark = pytest.mark.stack


def test_an_approved_quote_becomes_a_contract_and_its_schedule(stack, firm, ids):
    n = ids()
    firm.account(n)
    number = f"Q-T{n}"
    firm.quote(n, n, number, "fixed_fee", "2026-11-15", "2027-02-10", discount="10")
    firm.line(n * 10 + 1, n, 1, "fixed_fee", price="10000", discount="5")
    firm.line(n * 10 + 2, n, 2, "milestone", price="5000", code="GO-LIVE", due="2027-01-31")
    firm.approve(n)

    contract = eventually(lambda: firm.erp.one("select * from erp_inbound.contract where contract_number = %s", number),
                          what="the contract in the ERP")
    assert contract["revision"] == 1 and contract["client_account_number"] == f"ACC-{n:08d}"
    assert contract["trace_id"] == trace_id(number)
    eventually(lambda: firm.erp.one("select contract_value from erp_inbound.contract where contract_number = %s"
                                    " and contract_value = 13050", number),
               what="the contract value with every line")
    schedule = eventually(lambda: (rows := firm.erp.rows(
        "select schedule_key, planned_date::text, amount, status, trace_id from erp_inbound.billing_schedule"
        " where contract_number = %s order by schedule_key", number)) and len(rows) == 5 and rows)
    assert [(r["schedule_key"], r["planned_date"], r["amount"], r["status"]) for r in schedule] == [
        ("FF:1:202611", "2026-11-30", D("2137.50"), "planned"),
        ("FF:1:202612", "2026-12-31", D("2137.50"), "planned"),
        ("FF:1:202701", "2027-01-31", D("2137.50"), "planned"),
        ("FF:1:202702", "2027-02-28", D("2137.50"), "planned"),
        ("MS:GO-LIVE", "2027-01-31", D("4500.00"), "planned"),
    ]
    assert {r["trace_id"] for r in schedule} == {contract["trace_id"]}

    project = eventually(lambda: firm.psa.one("select * from psa.project where crm_quote_number = %s", number))
    assert project["project_code"] == f"PRJ-{number}" and project["created_by"] == "integration"
    assert project["status"] == "active"
    milestones = firm.psa.rows("select milestone_code, status from psa.milestone where project_id = %s", project["id"])
    assert milestones == [{"milestone_code": "GO-LIVE", "status": "planned"}]
    settle()
    assert firm.psa.one("select count(*) as n from psa.project where crm_quote_number = %s", number)["n"] == 1


def test_the_contract_is_published_as_an_avro_canonical_event(stack, firm, ids):
    n = ids()
    firm.account(n)
    number = f"Q-T{n}"
    firm.quote(n, n, number, "milestone", "2026-11-01", "2027-03-31")
    firm.line(n * 10 + 1, n, 1, "milestone", price="7000", code="M1", due="2027-01-15")
    firm.approve(n)
    consumer = Consumer({**stack.s.kafka_client_config(), "group.id": f"test-{n}", "auto.offset.reset": "earliest"})
    consumer.subscribe([avro.topic_of("contract")])
    found = []

    def seen():
        msg = consumer.poll(1)
        if msg is not None and not msg.error() and msg.key() == number.encode():
            found.append(avro.decode(msg.value()))
        return found

    try:
        (event_type, record), *_ = eventually(seen, what="the canonical contract event")
    finally:
        consumer.close()
    assert event_type == "contract" and record["contract_number"] == number
    assert record["trace_id"] == trace_id(number)


@pytest.mark.parametrize("status", ["draft", "rejected", "cancelled", "in_review"])
def test_quotes_that_are_not_approved_make_nothing(stack, firm, ids, status):
    n = ids()
    firm.account(n)
    number = f"Q-T{n}"
    firm.quote(n, n, number, "fixed_fee", "2026-11-01", "2027-01-31", status="draft")
    firm.line(n * 10 + 1, n, 1, "fixed_fee", price="3000")
    firm.crm.run("update crm.quote set status = %s where id = %s", status, n)
    # a later approved quote of another client proves the worker has processed past this one
    m = ids()
    firm.account(m)
    firm.quote(m, m, f"Q-T{m}", "fixed_fee", "2026-11-01", "2027-01-31")
    firm.line(m * 10 + 1, m, 1, "fixed_fee", price="3000")
    firm.approve(m)
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", f"Q-T{m}"))
    assert firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", number) is None
    assert firm.psa.one("select 1 from psa.project where crm_quote_number = %s", number) is None
