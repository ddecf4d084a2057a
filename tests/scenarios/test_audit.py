"""The audit trail through the real pipeline: every row the sync writes to the ERP, the PSA and
the CRM is recorded with before, after, source position and trace id, in the warehouse database's
own ``audit`` schema; a write that changes nothing records nothing; ``q2c audit`` shows it."""
import json

import pytest

from streams.rules.ids import trace_id
from streams.testing.firm import erp_rows_without_their_record, eventually, settle
from tests.commands import q2c

pytestmark = pytest.mark.stack


def audit_rows(firm, number: str) -> list[dict]:
    return firm.warehouse.rows("select * from audit.sink_write where contract_number = %s order by seq", number)


def test_every_write_is_recorded_with_its_change_and_cause(stack, firm, psa, ids):
    n = ids()
    number = f"Q-A{n}"
    pid = psa.milestone_engagement(n, number, price="2500", code="R1", accept=False)
    written = eventually(lambda: (rows := audit_rows(firm, number)) and len(rows) >= 3 and rows, what="the first writes' records")
    by_table = {r["table_name"]: r for r in written}
    contract = by_table["erp_inbound.contract"]
    assert contract["before_row"] is None and contract["after_row"]["contract_number"] == number
    assert contract["trace_id"] == trace_id(number) and contract["sink"] == "erp"
    assert contract["source_database"] == "crm" and contract["source_lsn"] > 0 and contract["source_transaction"]
    assert contract["source_committed_at"] is not None and contract["written_at"] >= contract["source_committed_at"]
    assert contract["source_ref"].startswith("crm.")  # the changed row: the quote, or a line of it
    assert by_table["erp_inbound.billing_schedule"]["row_key"] == f"{number}/MS:R1"
    project = by_table["psa.project"]
    assert project["sink"] == "psa" and project["row_key"] == number and project["after_row"]["project_code"]

    psa.accept(pid, "R1")
    event = eventually(lambda: firm.warehouse.one(
        "select * from audit.sink_write where table_name = 'erp_inbound.billing_event' and row_key = %s", f"MS:{number}:R1"),
        what="the billing event's record")
    assert event["before_row"] is None and event["after_row"]["status"] == "ready" and event["source_database"] == "psa"
    item = eventually(lambda: firm.warehouse.one(
        "select * from audit.sink_write where table_name = 'erp_inbound.billing_schedule' and row_key = %s"
        " and before_row is not null", f"{number}/MS:R1"), what="the schedule item's change")
    assert (item["before_row"]["status"], item["after_row"]["status"]) == ("planned", "eligible")

    # a change no ERP row depends on writes nothing, and records nothing
    count = len(audit_rows(firm, number))
    firm.crm.run("update crm.account set owner_email = 'someone.else@example.com' where id = %s", n)
    settle(6)
    assert len(audit_rows(firm, number)) == count
    assert erp_rows_without_their_record(firm, [number]) == []

    shown = q2c("audit", number, "--json")
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert len(records) == count and records[0]["table_name"] == "erp_inbound.contract"
    assert next(r for r in records if r["before_row"])["changes"]["status"] == ["planned", "eligible"]
    by_trace = q2c("audit", trace_id(number))
    assert by_trace.returncode == 0 and "erp_inbound.billing_event" in by_trace.stdout and "psa.project" in by_trace.stdout
    nothing = q2c("audit", "Q-NOTHING")
    assert nothing.returncode == 1 and "no audit records" in nothing.stdout
