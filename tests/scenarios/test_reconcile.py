"""`q2c reconcile` finds every difference between the sources and the ERP, with its cause."""
import json
from decimal import Decimal as D

import pytest

from streams.testing.firm import eventually
from tests.commands import q2c
from tests.scenarios.engagements import billing_queue, cancelled_engagement

pytestmark = pytest.mark.stack


def reconcile() -> tuple[int, dict]:
    result = q2c("reconcile", "--json", timeout=300)
    return result.returncode, json.loads(result.stdout)


def test_reconcile_explains_each_difference(stack, firm, psa, ids):
    n = ids()
    healthy, broken = f"Q-H{n}", f"Q-B{n}"
    for k, number in ((n, healthy), (n + 1, broken)):
        psa.milestone_engagement(k, number, price="1000", code="M")
        eventually(lambda number=number: firm.erp.one("select 1 from erp_inbound.billing_event where billing_event_id = %s",
                                                      f"MS:{number}:M"))
    cust = f"K{n % 10**9}"
    psa.customer(cust, f"ACC-{n:08d}")
    psa.invoice(f"V{n % 10**9}", cust, healthy, "100.00", [("MS", "MS:Q-NOPE:X", "100.00")])
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.receivable where invoice_number = %s", f"V{n % 10**9}"))
    # what a lost write, a hand edit and a clerk's typo look like (undone afterwards: the ERP is shared)
    lost = firm.erp.one("select * from erp_inbound.billing_event where billing_event_id = %s", f"MS:{broken}:M")
    firm.erp.run("delete from erp_inbound.billing_event where billing_event_id = %s", f"MS:{broken}:M")
    firm.erp.run("update erp_inbound.receivable set paid_amount = 42 where invoice_number = %s", f"V{n % 10**9}")
    try:
        check_report(n, healthy, broken)
    finally:
        columns = list(lost)
        firm.erp.run(f"insert into erp_inbound.billing_event ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
                     *lost.values())
        firm.erp.run("update erp_inbound.receivable set paid_amount = 0 where invoice_number = %s", f"V{n % 10**9}")


def check_report(n, healthy, broken):
    code, report = reconcile()
    assert code == 1 and report["unexplained"] >= 3
    mine = [f for f in report["findings"] if f["contract_number"] in (healthy, broken) or str(n % 10**9) in f["key"]]
    by_kind = {(f["kind"], f["key"]): f for f in mine}
    missing = by_kind[("missing_event", f"MS:{broken}:M")]
    assert missing["cause"] == "accepted milestone with no billing event" and not missing["explained"]
    assert by_kind[("amount_differs", f"V{n % 10**9}")]["detail"] == "ERP 42.00 vs sources 0.00"
    unknown = by_kind[("invoice_line_unknown_event", f"V{n % 10**9}/1")]
    assert unknown["detail"] == "MS:Q-NOPE:X"
    assert not [f for f in mine if f["contract_number"] == healthy and f["kind"] != "amount_differs"]


def test_the_holds_of_a_cancelled_contract_are_explained_and_counted_in_the_warehouse(stack, firm, psa, ids):
    n, number, year, pid = cancelled_engagement(firm, psa, ids, stamp=True)
    eventually(lambda: list(billing_queue(firm, number).values()).count(("on_hold", "contract_cancelled")) == 4,
               what="four events held")
    held = eventually(lambda: firm.warehouse.one(
        "select * from dw.leakage_on_hold where contract_number = %s and hold_reason = 'contract_cancelled' and events = 4", number),
        what="the warehouse counting the held events")
    assert held["amount"] == D("3720.00")  # M2 2000 + February 1000 + 6 h at 100 + the 120 expense
    code, report = reconcile()
    mine = [f for f in report["findings"] if f["contract_number"] == number]
    assert {f["kind"] for f in mine} == {"held_contract_cancelled"} and len(mine) == 4
    assert all(f["explained"] for f in mine)
    causes = {f["key"].split(":")[-1]: f["cause"] for f in mine if f["key"].startswith(("MS:", "FF:"))}
    assert causes == {"M2": "milestone accepted after the contract was cancelled: held until a change order re-activates it",
                      f"{year}02": "fiscal period opened after the contract was cancelled: held until a change order re-activates it"}
