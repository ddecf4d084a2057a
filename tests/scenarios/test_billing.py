"""RULES.md through the real pipeline, driven as the firm's users drive their systems.

Periods and tax rates are shared by every engagement, so each test plans its engagement in a year
of its own (``year``) and opens only that year's periods."""
from decimal import Decimal as D

import pytest

from streams.testing.firm import eventually
from tests.scenarios.engagements import billing_queue, cancelled_engagement, consultant_on_time_and_materials, engagement, events, schedule

pytestmark = pytest.mark.stack








def test_milestone_accepted_becomes_billable_and_reopened_is_reversed(firm, psa, ids):
    n, number, year = engagement(firm, ids, "milestone", [("milestone", dict(price="5000", code="M1", due="2100-03-31"))])
    project = psa.project_of(number)
    eventually(lambda: firm.psa.one("select 1 from psa.milestone where project_id = %s and milestone_code = 'M1'", project["id"]))
    psa.accept(project["id"], "M1")
    event = eventually(lambda: [e for e in events(firm, number) if e["status"] == "ready"], what="the milestone event")[0]
    assert event["billing_event_id"] == f"MS:{number}:M1"
    assert (event["event_type"], event["amount"], event["tax_rate_pct"], event["tax_amount"]) == (
        "milestone", D("5000.00"), D("20.000"), D("1000.00"))
    assert event["source_ref"].startswith("psa.milestone:")
    assert eventually(lambda: schedule(firm, number)["MS:M1"]["status"] == "eligible")
    firm.psa.run("update psa.milestone set status = 'completed', accepted_at = null where project_id = %s", project["id"])
    eventually(lambda: events(firm, number)[0]["status"] == "reversed", what="the reversal")
    assert schedule(firm, number)["MS:M1"]["status"] == "planned"


def test_opening_a_fiscal_period_makes_its_installments_billable(firm, psa, ids):
    n, number, year = engagement(firm, ids, "fixed_fee", [("fixed_fee", dict(price="3000"))], approve=False)
    psa.period(f"{year}02", "O")  # already open when the quote is approved: counts at once
    firm.approve(n)
    eventually(lambda: schedule(firm, number).get(f"FF:1:{year}02", {}).get("status") == "eligible", what="Feb eligible")
    psa.period(f"{year}01", "F")
    psa.period(f"{year}01", "O")
    eventually(lambda: schedule(firm, number)[f"FF:1:{year}01"]["status"] == "eligible", what="Jan eligible")
    rows = events(firm, number)
    assert [(e["billing_event_id"], e["amount"], e["status"]) for e in rows] == [
        (f"FF:{number}:1:{year}01", D("500.00"), "ready"), (f"FF:{number}:1:{year}02", D("500.00"), "ready")]
    assert schedule(firm, number)[f"FF:1:{year}03"]["status"] == "planned"
    assert rows[0]["source_ref"] == f"finance.gl_period:{year}01"


def test_time_and_materials_time_is_priced_held_and_released(firm, psa, ids):
    n, number, year = engagement(firm, ids, "time_and_materials", [("role_rate", dict(qty="100", price="150", role="CONS"))], discount="10")
    project = psa.project_of(number)
    pid = project["id"]
    psa.resource(n, role="CONS", cost="80")
    psa.resource(n + 1, role="CONS")
    psa.assign(n, pid, n, start=f"{year}-01-01", end=f"{year}-06-30")
    psa.time(n, pid, n, "7.5", day=f"{year}-01-10")        # ready
    psa.time(n + 1, pid, n, "25", day=f"{year}-01-11")     # invalid_hours
    psa.time(n + 2, pid, n, "8", day=f"{year + 1}-01-11")  # outside_term
    psa.time(n + 3, pid, n + 1, "8", day=f"{year}-01-12")  # not_assigned
    psa.time(n + 4, pid, n, "4", day=f"{year}-01-13", billable=False)  # cost only
    got = eventually(lambda: (rows := events(firm, number)) and len(rows) == 4 and rows, what="four time events")
    by_entry = {e["source_ref"]: e for e in got}
    ready = by_entry[f"psa.timesheet_entry:{n}"]
    assert (ready["status"], ready["unit_price"], ready["amount"], ready["tax_amount"]) == ("ready", D("135.00"), D("1012.50"), D("202.50"))
    assert by_entry[f"psa.timesheet_entry:{n + 1}"]["hold_reason"] == "invalid_hours"
    assert by_entry[f"psa.timesheet_entry:{n + 2}"]["hold_reason"] == "outside_term"
    held = by_entry[f"psa.timesheet_entry:{n + 3}"]
    assert held["hold_reason"] == "not_assigned"
    costs = eventually(lambda: (rows := firm.erp.rows("select * from erp_inbound.project_cost where contract_number = %s", number))
                       and len(rows) == 5 and rows)
    assert sorted(c["cost_amount"] for c in costs if c["employee_no"] == f"E{n}") == [D("320.00"), D("600.00"), D("640.00"), D("2000.00")]
    # the hold is re-examined when its cause changes: the same event becomes ready
    psa.assign(n + 1, pid, n + 1, start=f"{year}-01-01", end=f"{year}-06-30")
    released = eventually(lambda: [e for e in events(firm, number, f"psa.timesheet_entry:{n + 3}") if e["status"] == "ready"])
    assert released[0]["billing_event_id"] == held["billing_event_id"]




def test_reopened_changed_and_deleted_timesheets(firm, psa, ids):
    n, number, year, pid = consultant_on_time_and_materials(firm, psa, ids)
    psa.time(n + 1, pid, n, "6", day=f"{year}-01-11")
    first = eventually(lambda: (rows := events(firm, number, f"psa.timesheet_entry:{n}")) and rows[0])
    # reopened, edited, approved again: the old event reversed, a new one under a new id
    firm.psa.run("update psa.timesheet_entry set status = 'submitted', approved_at = null where id = %s", n)
    eventually(lambda: events(firm, number, f"psa.timesheet_entry:{n}")[0]["status"] == "reversed")
    firm.psa.run("update psa.timesheet_entry set hours = 5, status = 'approved', approved_at = now() where id = %s", n)
    rows = eventually(lambda: (r := events(firm, number, f"psa.timesheet_entry:{n}")) and len(r) == 2 and r)
    by_id = {r["billing_event_id"]: r for r in rows}
    assert by_id[first["billing_event_id"]]["status"] == "reversed"
    (new,) = [r for k, r in by_id.items() if k != first["billing_event_id"]]
    assert (new["quantity"], new["amount"], new["status"]) == (D("5.00"), D("500.00"), "ready")
    # deleted by an administrator: its event and its cost are reversed
    firm.psa.run("delete from psa.timesheet_entry where id = %s", n + 1)
    eventually(lambda: events(firm, number, f"psa.timesheet_entry:{n + 1}")[0]["status"] == "reversed", what="deleted entry reversed")
    costs = firm.erp.rows("select status from erp_inbound.project_cost where contract_number = %s and status = 'reversed'", number)
    assert len(costs) >= 2


def test_invoices_bill_events_payments_apply_and_a_void_puts_them_back(firm, psa, ids):
    n, number, year = engagement(firm, ids, "milestone", [("milestone", dict(price="1000", code="A")),
                                                            ("milestone", dict(price="2000", code="B"))])
    pid = psa.project_of(number)["id"]
    eventually(lambda: len(firm.psa.rows("select 1 from psa.milestone where project_id = %s", pid)) == 2)
    psa.accept(pid, "A")
    psa.accept(pid, "B")
    eventually(lambda: len([e for e in events(firm, number) if e["status"] == "ready"]) == 2)
    cust = f"C{n % 10**9}"
    psa.customer(cust, f"ACC-{n:08d}")
    # the clerk mistypes the contract reference: the src_ref still matches the engagement
    psa.invoice(f"I{n % 10**9}", cust, " q-typo ", "1200.00", [("MS", f"MS:{number}:A", "1000.00")])
    billed = eventually(lambda: [e for e in events(firm, number) if e["status"] == "billed"], what="billed event")
    assert billed[0]["billing_event_id"] == f"MS:{number}:A" and billed[0]["invoice_number"] == f"I{n % 10**9}"
    eventually(lambda: schedule(firm, number)["MS:A"]["status"] == "billed")
    receivable = eventually(lambda: firm.erp.one("select * from erp_inbound.receivable where invoice_number = %s", f"I{n % 10**9}"))
    assert receivable["contract_number"] == number and receivable["client_account_number"] == f"ACC-{n:08d}"
    assert receivable["status"] == "issued" and receivable["trace_id"] is not None
    psa.receipt(f"R{n % 10**9}", f"I{n % 10**9}", cust, "500.00")
    firm.finance.run("update finance.ar_invoice_hdr set status_cd = 'PP' where inv_no = %s", f"I{n % 10**9}")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.receivable where invoice_number = %s and paid_amount = 500"
                                    " and status = 'partially_paid'", f"I{n % 10**9}"))
    fin = eventually(lambda: firm.crm.one("select * from crm.account_financials where account_id = %s and open_receivable = 700", n))
    assert fin["last_invoice_number"] == f"I{n % 10**9}" and fin["last_invoice_status"] == "partially_paid"
    assert str(fin["last_payment_at"]) == "2026-12-15" and fin["overdue_receivable"] == D("700.00")
    firm.finance.run("update finance.ar_invoice_hdr set status_cd = 'VD' where inv_no = %s", f"I{n % 10**9}")
    eventually(lambda: all(e["status"] == "ready" for e in events(firm, number)), what="events back to ready after the void")
    eventually(lambda: firm.crm.one("select 1 from crm.account_financials where account_id = %s and open_receivable = 0"
                                    " and last_invoice_status = 'void'", n))


def test_an_unmatched_invoice_is_a_receivable_without_contract(firm, psa, ids):
    n = ids()
    cust = f"U{n % 10**9}"
    psa.customer(cust, "ACC-NOBODY")
    psa.invoice(f"X{n % 10**9}", cust, None, "99.00", [("TE", None, "99.00")])
    row = eventually(lambda: firm.erp.one("select * from erp_inbound.receivable where invoice_number = %s", f"X{n % 10**9}"))
    assert row["contract_number"] is None and row["trace_id"] is None


def test_a_change_order_reshapes_the_schedule_and_adds_the_missing_rate(firm, psa, ids):
    n, number, year = engagement(firm, ids, "time_and_materials", [("role_rate", dict(qty="100", price="100", role="CONS")),
                                                                     ("milestone", dict(price="1000", code="KEEP")),
                                                                     ("milestone", dict(price="2000", code="DROP"))])
    pid = psa.project_of(number)["id"]
    psa.resource(n, role="ARCH")
    psa.assign(n, pid, n, role="ARCH", start=f"{year}-01-01", end=f"{year}-06-30")
    psa.time(n, pid, n, "8", day=f"{year}-01-10")
    held = eventually(lambda: (r := events(firm, number, f"psa.timesheet_entry:{n}"))
                      and r[0]["hold_reason"] == "no_rate_for_role" and r[0])
    co = n + 500
    firm.quote(co, n, f"{number}-R2", "time_and_materials", f"{year}-01-01", f"{year}-09-30", revision=2, amends=n)
    firm.line(co * 10 + 1, co, 1, "role_rate", qty="100", price="100", role="CONS")
    firm.line(co * 10 + 2, co, 2, "role_rate", qty="50", price="200", role="ARCH")
    firm.line(co * 10 + 3, co, 3, "milestone", price="1500", code="KEEP")
    firm.line(co * 10 + 4, co, 4, "milestone", price="4000", code="NEW")
    with firm.crm.conn.transaction():  # the CRM supersedes the replaced quote in the same transaction
        firm.crm.run("update crm.quote set status = 'superseded' where id = %s", n)
        firm.approve(co)
    contract = eventually(lambda: firm.erp.one("select * from erp_inbound.contract where contract_number = %s and revision = 2", number))
    assert str(contract["end_date"]) == f"{year}-09-30"
    eventually(lambda: schedule(firm, number).get("MS:NEW"))
    items = schedule(firm, number)
    assert {k: (v["status"], v["amount"]) for k, v in items.items()} == {
        "MS:KEEP": ("planned", D("1500.00")), "MS:DROP": ("cancelled", D("2000.00")), "MS:NEW": ("planned", D("4000.00"))}
    assert contract["contract_value"] == D("25500.00")  # 1500 + 4000 + NTE 10000 + 10000
    released = eventually(lambda: (r := events(firm, number, f"psa.timesheet_entry:{n}")) and r[0]["status"] == "ready" and r[0])
    assert released["billing_event_id"] == held["billing_event_id"] and released["unit_price"] == D("200.00")


def test_expense_lines(firm, psa, ids):
    n, number, year = engagement(firm, ids, "time_and_materials", [("role_rate", dict(qty="10", price="100", role="CONS")),
                                                                     ("expense_allowance", dict(price="150"))])
    pid = psa.project_of(number)["id"]
    psa.resource(n)
    psa.expense(n, pid, n, "100.00")
    psa.expense(n + 1, pid, n, "20.00", currency="USD")
    psa.expense(n + 2, pid, n, "60.00")
    rows = eventually(lambda: (r := events(firm, number)) and len(r) == 3 and r)
    assert {r["source_ref"]: (r["status"], r["hold_reason"]) for r in rows} == {
        f"psa.expense_line:{n}": ("ready", None), f"psa.expense_line:{n + 1}": ("on_hold", "currency_mismatch"),
        f"psa.expense_line:{n + 2}": ("on_hold", "over_expense_cap")}






def test_a_cancelled_contract_bills_nothing_new_and_a_change_order_releases_the_holds(firm, psa, ids):
    n, number, year, pid = cancelled_engagement(firm, psa, ids)
    held = {("psa.milestone", "M2"), ("finance.gl_period", f"{year}02"), ("psa.timesheet_entry", str(n + 1)),
            ("psa.expense_line", str(n))}
    queue = eventually(lambda: (q := billing_queue(firm, number)) and len(q) == 7 and q, what="seven billing events")
    assert queue == {
        ("psa.milestone", "M1"): ("ready", None), ("finance.gl_period", f"{year}01"): ("ready", None),
        ("psa.timesheet_entry", str(n)): ("ready", None),
        **{k: ("on_hold", "contract_cancelled") for k in held},
    }
    contract = firm.erp.one("select * from erp_inbound.contract where contract_number = %s", number)
    assert (contract["status"], contract["revision"]) == ("cancelled", 1)
    assert contract["contract_value"] == D("12000.00")  # M1 + January's installment + the NTE
    assert {k: v["status"] for k, v in schedule(firm, number).items()} == {
        "MS:M1": "eligible", "MS:M2": "cancelled",
        f"FF:4:{year}01": "eligible", f"FF:4:{year}02": "cancelled", f"FF:4:{year}03": "cancelled"}
    costs = eventually(lambda: (r := firm.erp.rows("select status from erp_inbound.project_cost where contract_number = %s", number))
                       and len(r) == 2 and r, what="both costs")
    assert [c["status"] for c in costs] == ["posted", "posted"]
    before = {e["source_ref"]: e["billing_event_id"] for e in events(firm, number)}
    # a change order re-activates the contract: the holds are re-examined, the events ready under their ids
    co = n + 500
    firm.quote(co, n, f"{number}-R2", "time_and_materials", f"{year}-01-01", f"{year}-03-31", revision=2, amends=n)
    for no, (kind, kw) in enumerate([("role_rate", dict(qty="100", price="100", role="CONS")),
                                     ("milestone", dict(price="1000", code="M1")), ("milestone", dict(price="2000", code="M2")),
                                     ("fixed_fee", dict(price="3000")), ("expense_allowance", dict(price="500"))], 1):
        firm.line(co * 10 + no, co, no, kind, **kw)
    firm.approve(co)
    eventually(lambda: all(s == ("ready", None) for s in billing_queue(firm, number).values()), what="every hold released")
    assert {e["source_ref"]: e["billing_event_id"] for e in events(firm, number)} == before
    contract = firm.erp.one("select * from erp_inbound.contract where contract_number = %s", number)
    assert (contract["status"], contract["revision"]) == ("active", 2)
    assert {k: v["status"] for k, v in schedule(firm, number).items()} == {
        "MS:M1": "eligible", "MS:M2": "eligible",
        f"FF:4:{year}01": "eligible", f"FF:4:{year}02": "eligible", f"FF:4:{year}03": "planned"}
