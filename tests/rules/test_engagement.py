"""The engagement rules of RULES.md, on canonical models (no I/O)."""
from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules.engagement import derive
from tests.rules.builders import (
    T0,
    assignment,
    expense,
    invoice,
    invoice_line,
    line,
    milestone,
    period,
    project,
    quote,
    resource,
    tax,
    time_entry,
    view,
)


def tm_view(entries=(), lines=None, quotes=None, **kw):
    quotes = quotes or [quote(model="time_and_materials", discount="10")]
    lines = lines if lines is not None else [line(1, "role_rate", qty="100", price="150", role="CONS")]
    kw.setdefault("project", project())
    kw.setdefault("assignments", [assignment()])
    kw.setdefault("resources", {5: resource()})
    return view(quotes, lines, time_entries=list(entries), **kw)


# --- approval ----------------------------------------------------------------------------------

def test_draft_rejected_and_cancelled_quotes_make_nothing():
    for status in ("draft", "in_review", "rejected", "cancelled"):
        out = derive(view([quote(status=status)], [line(1, "fixed_fee")]))
        assert out.contract is None and not out.schedule and not out.events


def test_approval_makes_the_contract_with_client_fields_and_schedule_value():
    out = derive(view([quote(discount="10", start=date(2026, 11, 15), end=date(2027, 2, 10))],
                      [line(1, "fixed_fee", price="10000", discount="5"),
                       line(2, "milestone", price="5000", code="GO", due=date(2027, 1, 31))]))
    c = out.contract
    assert (c.contract_number, c.revision, c.client_account_number, c.client_name, c.legal_entity) == (
        "Q-1", 1, "ACC-000001", "Acme Ltd", "UK01")
    assert c.contract_value == D("13050.00") and c.status == "active"
    assert all(i.trace_id == c.trace_id for i in out.schedule.values())
    assert {i.status for i in out.schedule.values()} == {"planned"}


def test_time_and_materials_contract_value_adds_the_not_to_exceed():
    out = derive(tm_view())
    assert out.contract.contract_value == D("13500.00")  # 100 h × 150 × 0.9


def test_the_sync_provisions_a_project_only_when_none_exists():
    out = derive(view([quote(model="milestone")], [line(1, "milestone", code="M1", due=date(2027, 1, 1))]))
    assert out.provision.project_code == "PRJ-Q-1" and [m[0] for m in out.provision.milestones] == ["M1"]
    assert derive(view([quote()], [line(1, "fixed_fee")], project=project())).provision is None


# --- eligibility -------------------------------------------------------------------------------

def test_accepted_milestone_is_eligible_with_an_event_and_reopening_reverses_it():
    lines = [line(1, "milestone", price="5000", code="GO", due=date(2027, 1, 31))]
    accepted = derive(view([quote(model="milestone")], lines, project=project(), milestones=[milestone("GO")]))
    event = accepted.events["MS:Q-1:GO"]
    assert accepted.schedule["MS:GO"].status == "eligible"
    assert (event.status, event.amount, event.tax_rate_pct, event.tax_amount) == ("ready", D("5000.00"), D("20"), D("1000.00"))
    reopened = derive(view([quote(model="milestone")], lines, project=project(),
                           milestones=[milestone("GO", status="completed")]), accepted)
    assert reopened.schedule["MS:GO"].status == "planned"
    assert reopened.events["MS:Q-1:GO"].status == "reversed"


def test_opening_a_period_makes_that_months_installments_eligible():
    q = quote(start=date(2026, 11, 1), end=date(2027, 1, 31))
    out = derive(view([q], [line(1, "fixed_fee", price="3000")], project=project(),
                      periods={"202611": period("202611"), "202612": period("202612", status="F")}))
    assert out.schedule["FF:1:202611"].status == "eligible"
    assert out.schedule["FF:1:202612"].status == "planned"
    assert list(out.events) == ["FF:Q-1:1:202611"]
    assert out.events["FF:Q-1:1:202611"].source_ref == "finance.gl_period:202611"


def test_no_tax_rate_holds_the_event():
    out = derive(view([quote(model="milestone")], [line(1, "milestone", code="GO", tax="RED")], project=project(),
                      milestones=[milestone("GO")]))
    assert out.events["MS:Q-1:GO"].hold_reason == "no_tax_rate"


# --- time --------------------------------------------------------------------------------------

def test_approved_billable_time_is_priced_at_the_net_rate_of_the_assignment_role():
    out = derive(tm_view([time_entry(1, hours="7.5")]))
    (event,) = out.events.values()
    assert (event.event_type, event.quantity, event.unit_price, event.amount, event.status) == (
        "time", D("7.5"), D("135.00"), D("1012.50"), "ready")
    assert event.source_ref == "psa.timesheet_entry:1"


def test_time_holds_are_checked_in_the_stated_order():
    cases = {
        "invalid_hours": time_entry(1, hours="25", day=date(2030, 1, 1)),
        "outside_term": time_entry(2, day=date(2030, 1, 1)),
        "not_assigned": time_entry(3, rid=6),
        "no_rate_for_role": time_entry(4, rid=8),
    }
    out = derive(tm_view(cases.values(), assignments=[assignment(), assignment(aid=2, rid=8, role="ARCH")]))
    held = {e.source_ref.split(":")[1]: e.hold_reason for e in out.events.values()}
    assert held == {"1": "invalid_hours", "2": "outside_term", "3": "not_assigned", "4": "no_rate_for_role"}


def test_over_budget_holds_the_entry_that_would_pass_the_not_to_exceed():
    lines = [line(1, "role_rate", qty="10", price="100", role="CONS")]  # NTE 900 after 10 %
    entries = [time_entry(i, hours="4", approved=T0 + timedelta(hours=i)) for i in (1, 2, 3)]
    out = derive(tm_view(entries, lines=lines))
    assert [out.events[k].hold_reason for k in sorted(out.events)] == [None, None, "over_budget"]


def test_a_change_order_adding_the_missing_rate_releases_the_hold_under_the_same_id():
    r1 = quote(model="time_and_materials")
    entry = time_entry(1, rid=8, approved=T0 + timedelta(days=1))
    before = derive(tm_view([entry], quotes=[r1], assignments=[assignment(rid=8, role="ARCH")]))
    (held,) = before.events.values()
    assert held.hold_reason == "no_rate_for_role"
    r1s = quote(model="time_and_materials", status="superseded")
    r2 = quote(qid=2, model="time_and_materials", revision=2, amends=1, approved=T0 + timedelta(days=5))
    lines = [line(1, "role_rate", qty="100", price="150", role="CONS"), line(1, "role_rate", qty="100", price="200", role="ARCH", qid=2)]
    after = derive(tm_view([entry], quotes=[r1s, r2], lines=lines, assignments=[assignment(rid=8, role="ARCH")]), before)
    assert after.events[held.billing_event_id].status == "ready"
    assert after.events[held.billing_event_id].unit_price == D("200.00")


def test_new_rates_price_time_approved_from_then_on():
    r1 = quote(model="time_and_materials", status="superseded")
    r2 = quote(qid=2, model="time_and_materials", revision=2, amends=1, approved=T0 + timedelta(days=5))
    lines = [line(1, "role_rate", qty="100", price="100", role="CONS"), line(1, "role_rate", qty="100", price="120", role="CONS", qid=2)]
    early = time_entry(1, approved=T0 + timedelta(days=1))
    late = time_entry(2, approved=T0 + timedelta(days=6))
    out = derive(tm_view([early, late], quotes=[r1, r2], lines=lines))
    prices = {e.source_ref: e.unit_price for e in out.events.values()}
    assert prices == {"psa.timesheet_entry:1": D("100.00"), "psa.timesheet_entry:2": D("120.00")}


def test_a_changed_line_reverses_its_event_and_gets_a_new_id():
    first = derive(tm_view([time_entry(1, hours="8")]))
    second = derive(tm_view([time_entry(1, hours="6")]), first)
    (old_id,) = first.events
    assert second.events[old_id].status == "reversed"
    new = [e for k, e in second.events.items() if k != old_id]
    assert len(new) == 1 and new[0].quantity == D("6") and new[0].status == "ready"


def test_a_billed_event_never_changes_and_a_rev_event_is_queued():
    first = derive(tm_view([time_entry(1, hours="8")]))
    (eid,) = first.events
    billed_lines = [(invoice_line("INV1", 1, eid, "TE"), invoice("INV1"))]
    billed = derive(tm_view([time_entry(1, hours="8")], invoice_lines=billed_lines), first)
    assert billed.events[eid].status == "billed" and billed.events[eid].invoice_number == "INV1"
    reopened = derive(tm_view([time_entry(1, hours="8", status="submitted")], invoice_lines=billed_lines), billed)
    assert reopened.events[eid] == billed.events[eid]
    rev = reopened.events[f"{eid}:REV"]
    assert (rev.quantity, rev.amount, rev.tax_amount, rev.status) == (-D("8"),
                                                                      -billed.events[eid].amount, -billed.events[eid].tax_amount, "ready")


def test_a_voided_invoice_puts_its_events_back_to_ready():
    first = derive(tm_view([time_entry(1)]))
    (eid,) = first.events
    void = derive(tm_view([time_entry(1)], invoice_lines=[(invoice_line("INV1", 1, eid, "TE"), invoice("INV1", status="VD"))]), first)
    assert void.events[eid].status == "ready" and void.events[eid].invoice_number is None


def test_time_on_a_non_t_and_m_engagement_makes_no_time_event_but_costs():
    out = derive(view([quote()], [line(1, "fixed_fee")], project=project(), time_entries=[time_entry(1, billable=False), time_entry(2)],
                      resources={5: resource(cost="80")}))
    assert not [e for e in out.events.values() if e.event_type == "time"]
    assert sorted(c.cost_amount for c in out.costs.values()) == [D("640.00"), D("640.00")]


def test_a_changed_cost_rate_restates_the_costs_of_the_entries():
    """docs/choices.md: a cost row is hours x the resource's cost rate; a new rate reverses the old
    rows and posts new ones (the billing events, priced from the quote, do not move)."""
    first = derive(tm_view([time_entry(1, hours="8")], resources={5: resource(cost="80")}))
    again = derive(tm_view([time_entry(1, hours="8")], resources={5: resource(cost="90")}), first)
    (old_id,) = first.costs
    assert again.costs[old_id].status == "reversed" and again.costs[old_id].cost_amount == D("640.00")
    assert [c.cost_amount for k, c in again.costs.items() if k != old_id and c.status == "posted"] == [D("720.00")]
    assert again.events == first.events


# --- expenses ----------------------------------------------------------------------------------

def test_expense_holds():
    allowance = line(2, "expense_allowance", price="150")
    no_allowance = derive(tm_view(expenses=[expense(1)]))
    assert [e.hold_reason for e in no_allowance.events.values()] == ["expenses_not_billable"]
    lines = [line(1, "role_rate", qty="100", price="150", role="CONS"), allowance]
    out = derive(tm_view(lines=lines, expenses=[expense(1, "100"), expense(2, "20", currency="USD"), expense(3, "60")]))
    held = {e.source_ref: e.hold_reason for e in out.events.values()}
    assert held == {"psa.expense_line:1": None, "psa.expense_line:2": "currency_mismatch", "psa.expense_line:3": "over_expense_cap"}


# --- invariants --------------------------------------------------------------------------------

entries = st.lists(
    st.builds(
        lambda i, h, ok: time_entry(i, hours=str(h), status="approved" if ok else "submitted", approved=T0 + timedelta(minutes=i)),
        st.integers(1, 40), st.decimals("0.25", "12", places=2), st.booleans(),
    ),
    max_size=12, unique_by=lambda t: t.id,
)


@settings(max_examples=60, deadline=None)
@given(entries, entries)
def test_ids_are_stable_under_replay_and_a_rerun_changes_nothing(before, after):
    first = derive(tm_view(before))
    again = derive(tm_view(before), first)
    assert again.events == first.events  # the same state yields the same ids and rows
    later = derive(tm_view(after), first)
    assert derive(tm_view(after), later).events == later.events
    for eid, _event in first.events.items():  # nothing written is ever forgotten
        assert eid in later.events


@settings(max_examples=40, deadline=None)
@given(entries)
def test_a_reversal_cancels_its_event_exactly(before):
    first = derive(tm_view(before))
    lines = [(invoice_line("INV1", n, eid, "TE"), invoice("INV1")) for n, eid in enumerate(first.events)]
    billed = derive(tm_view(before, invoice_lines=lines), first)
    gone = derive(tm_view([], invoice_lines=lines), billed)
    for eid, event in billed.events.items():
        rev = gone.events[f"{eid}:REV"]
        assert rev.amount + event.amount == 0 and rev.quantity + event.quantity == 0


def test_tax_is_the_rate_valid_on_the_service_date_and_a_rate_added_later_releases_the_hold():
    from streams.rules.tax import rate_on

    rates = [tax(rate="17.5", valid_from=date(2000, 1, 1), valid_to=date(2010, 12, 31)), tax(rate="20", valid_from=date(2011, 1, 1))]
    assert rate_on(rates, "STD", "GB", date(2010, 12, 31)) == D("17.5")
    assert rate_on(rates, "STD", "GB", date(2011, 1, 1)) == D("20")
    assert rate_on(rates, "STD", "DE", date(2011, 1, 1)) is None
    held = derive(tm_view([time_entry(1)], tax_rates=[]))
    (event,) = held.events.values()
    assert event.hold_reason == "no_tax_rate" and event.tax_amount is None
    released = derive(tm_view([time_entry(1)], tax_rates=[tax(rate="20")]), held)
    assert released.events[event.billing_event_id].status == "ready"
    assert released.events[event.billing_event_id].tax_amount == D("216.00")  # 8 h × 135 × 20 %


def test_retainer_months_become_billable_as_their_periods_open():
    q = quote(model="retainer", start=date(2026, 12, 10), end=date(2027, 12, 31))
    out = derive(view([q], [line(1, "retainer_fee", qty="3", price="2000")], project=project(),
                      periods={"202612": period("202612"), "202701": period("202701", status="C"), "202702": period("202702", status="F")}))
    assert {k: i.status for k, i in out.schedule.items()} == {"RT:1:202612": "eligible",
                                                              "RT:1:202701": "eligible", "RT:1:202702": "planned"}
    assert sorted(out.events) == ["RT:Q-1:1:202612", "RT:Q-1:1:202701"]
    assert out.contract.contract_value == D("6000.00")


def test_a_held_event_finance_invoiced_is_billed_without_its_hold():
    held = derive(tm_view([time_entry(1)], tax_rates=[]))
    (eid,) = held.events
    assert held.events[eid].hold_reason == "no_tax_rate"
    invoiced = [(invoice_line("INV1", 1, eid, "TE"), invoice("INV1"))]
    gone = derive(tm_view([time_entry(1, status="submitted")], tax_rates=[], invoice_lines=invoiced), held)
    assert (gone.events[eid].status, gone.events[eid].hold_reason, gone.events[eid].invoice_number) == ("billed", None, "INV1")
    assert gone.events[f"{eid}:REV"].status == "ready"
