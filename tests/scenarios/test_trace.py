"""``q2c trace``: one engagement from quote approval to cash, found by any of its numbers, in a
terminal and as JSON, from the real pipeline's audit trail and warehouse."""
import json

import pytest

from streams.operations.trace import describe
from streams.rules.ids import trace_id
from streams.testing.firm import eventually
from tests.commands import q2c

pytestmark = pytest.mark.stack


def test_an_engagement_from_approval_to_cash(stack, firm, psa, ids):
    n = ids()
    number = f"Q-TR{n}"
    psa.milestone_engagement(n, number, price="1000", code="A")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.billing_event where billing_event_id = %s and status = 'ready'",
                                    f"MS:{number}:A"), what="the milestone ready to bill")
    cust, invoice = f"C{n % 10**9}", f"I{n % 10**9}"
    psa.customer(cust, f"ACC-{n:08d}")
    psa.invoice(invoice, cust, number, "1200.00", [("MS", f"MS:{number}:A", "1000.00")])
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.receivable where invoice_number = %s", invoice))
    psa.receipt(f"R{n % 10**9}", invoice, cust, "1200.00")
    # a change order: revision 2 amends the quote
    firm.quote(n + 1, n, f"{number}-R2", "milestone", "2026-11-01", "2027-06-30", revision=2, amends=n)
    firm.line((n + 1) * 10 + 1, n + 1, 1, "milestone", price="1000", code="A")
    firm.line((n + 1) * 10 + 2, n + 1, 2, "milestone", price="500", code="B")
    firm.approve(n + 1)

    def complete():
        done = q2c("trace", number, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        found = json.loads(done.stdout)
        kinds = {s["kind"] for s in found["steps"]}
        missing = {"quote", "contract", "schedule", "project", "billing_event", "invoice", "payment"} - kinds
        assert not missing, f"missing {missing}: {[s['what'] for s in found['steps']]}"
        assert any("revision 1 → 2" in s["what"] for s in found["steps"]), [s["what"] for s in found["steps"]]
        return found

    found = eventually(complete, timeout=90, what="the whole way in the trace")
    assert found["contract_number"] == number and found["trace_id"] == trace_id(number)
    assert {q["quote_number"] for q in found["quotes"]} == {number, f"{number}-R2"}
    assert found["invoices"] == [invoice]
    steps = found["steps"]
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    billed = next(s for s in steps if s["kind"] == "billing_event" and "billed on invoice" in s["what"])
    assert invoice in billed["what"] and billed["source"].startswith("finance ")
    written = [s for s in steps if s["kind"] != "quote"]
    assert all(s["after_commit_s"] is not None and s["after_commit_s"] >= 0 for s in written)
    assert any(s["kind"] == "payment" and "1200.00" in s["what"] for s in steps)

    # found by any of its numbers
    for asked in (f"{number}-R2", invoice, trace_id(number)):
        again = q2c("trace", asked, "--json")
        assert again.returncode == 0 and json.loads(again.stdout)["contract_number"] == number, asked
    shown = q2c("trace", number)
    assert shown.returncode == 0 and number in shown.stdout and "billed on invoice" in shown.stdout
    unknown = q2c("trace", "Q-NOBODY")
    assert unknown.returncode == 1 and "nothing known of Q-NOBODY" in unknown.stdout


def test_each_write_is_said_in_words():
    event = {"billing_event_id": "TE:1", "amount": "800.00", "currency": "GBP", "event_type": "time", "status": "on_hold",
             "hold_reason": "not_assigned", "invoice_number": None}
    assert describe("erp_inbound.billing_event", None, event)[1] == "billing event TE:1: time 800.00 GBP, on_hold (hold: not_assigned)"
    released = {**event, "status": "ready", "hold_reason": None}
    assert describe("erp_inbound.billing_event", event, released)[1].endswith("hold released (not_assigned)")
    billed = {**released, "status": "billed", "invoice_number": "I-9"}
    assert describe("erp_inbound.billing_event", released, billed)[1].endswith("billed on invoice I-9")
    assert describe("erp_inbound.billing_event", billed, released)[1].endswith("back to ready (invoice I-9 voided)")
    assert describe("erp_inbound.billing_event", released, {**released, "status": "reversed"})[1].endswith("reversed")
    invoice = {"invoice_number": "I-9", "gross_amount": "960.00", "paid_amount": "0.00", "currency": "GBP", "status": "issued"}
    assert describe("erp_inbound.receivable", invoice, {**invoice, "paid_amount": "500.00", "status": "partially_paid"}) == (
        "payment", "invoice I-9: paid 0.00 → 500.00 GBP, partially_paid")
