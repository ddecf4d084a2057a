from datetime import UTC, date, datetime
from decimal import Decimal as D

from streams.rules.schedule import months_touched, plan, reshape
from tests.rules.builders import line, quote


def test_months_touched_counts_partial_months_at_both_ends():
    assert months_touched(date(2026, 11, 15), date(2027, 2, 10)) == [(2026, 11), (2026, 12), (2027, 1), (2027, 2)]
    assert months_touched(date(2026, 1, 1), date(2026, 1, 31)) == [(2026, 1)]


def test_fixed_fee_is_one_installment_per_month_on_the_last_day():
    q = quote(start=date(2026, 11, 15), end=date(2027, 2, 10), discount="10")
    items = plan(q, [line(1, "fixed_fee", price="10000", discount="5")])
    assert [i.schedule_key for i in items] == ["FF:1:202611", "FF:1:202612", "FF:1:202701", "FF:1:202702"]
    assert [i.planned_date for i in items] == [date(2026, 11, 30), date(2026, 12, 31), date(2027, 1, 31), date(2027, 2, 28)]
    assert sum(i.amount for i in items) == D("8550.00")


def test_retainer_bills_quantity_months_from_the_start_month_on_the_first_day():
    q = quote(model="retainer", start=date(2026, 12, 10), end=date(2027, 12, 31))
    items = plan(q, [line(3, "retainer_fee", qty="3", price="2000")])
    assert [(i.schedule_key, i.planned_date, i.amount) for i in items] == [
        ("RT:3:202612", date(2026, 12, 1), D("2000.00")),
        ("RT:3:202701", date(2027, 1, 1), D("2000.00")),
        ("RT:3:202702", date(2027, 2, 1), D("2000.00")),
    ]


def test_milestone_is_planned_on_its_due_date():
    q = quote(model="milestone")
    items = plan(q, [line(2, "milestone", price="5000", code="GO-LIVE", due=date(2027, 1, 31))])
    assert [(i.schedule_key, i.planned_date, i.amount) for i in items] == [("MS:GO-LIVE", date(2027, 1, 31), D("5000.00"))]


def test_role_rate_and_expense_lines_plan_nothing():
    assert plan(quote(), [line(1, "role_rate", qty="100", price="150", role="PM"), line(2, "expense_allowance", price="900")]) == []


def test_change_order_reshapes_planned_items_and_keeps_locked_ones():
    r1 = quote(qid=1, model="milestone")
    r2 = quote(qid=2, model="milestone", revision=2, amends=1, approved=datetime(2026, 12, 1, tzinfo=UTC))
    lines1 = [line(1, "milestone", price="1000", code="A"), line(2, "milestone", price="2000", code="B"),
              line(3, "milestone", price="3000", code="C")]
    lines2 = [line(1, "milestone", price="1500", code="A"), line(2, "milestone", price="2500", code="B", qid=2),
              line(4, "milestone", price="4000", code="D", qid=2)]
    # B was accepted before the change order: it keeps its amount; C is dropped: cancelled; D is new
    schedule = reshape([(r1, lines1), (r2, lines2)], locked_at=lambda key, when: key == "MS:B")
    assert {k: (e.status, e.item.amount) for k, e in schedule.items()} == {
        "MS:A": ("planned", D("1500.00")),
        "MS:B": ("planned", D("2000.00")),
        "MS:C": ("cancelled", D("3000.00")),
        "MS:D": ("planned", D("4000.00")),
    }
    assert schedule["MS:B"].locked
