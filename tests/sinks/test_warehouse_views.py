"""The warehouse's views on the real PostgreSQL, each from rows loaded by hand into a warehouse of
its own, against figures computed by hand: multi-currency engagements and receivables among them.
And the currency rule as a property: no view's money column ever adds amounts of two currencies."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import PROJECT_ROOT
from tests.sinks.warehouse_db import at, contract, cost, event, expense, receivable, schedule_item, time_entry, warehouse_of_its_own

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def wh(stack):
    with warehouse_of_its_own(stack.s.dsn("postgres")) as warehouse:
        yield warehouse


@pytest.fixture
def dw(wh):
    wh.empty()
    return wh


def month_start(day: date, months: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def test_margin_is_in_the_engagements_currency_and_other_cost_currencies_are_reported_apart(dw):
    """The issue's engagement: USD time and materials, a UK consultant costed in GBP and two US
    consultants in USD. A view that added the GBP cost to the USD cost showed cost 4,030.00 and
    margin -1,199.50."""
    dw.load(contract("Q-M", "USD"), contract("Q-N", "GBP"),
            event("E1", "Q-M", "1830.50", status="billed", invoice="INV-1"), event("E2", "Q-M", "1000.00"),
            event("E3", "Q-M", "300.00", status="on_hold", hold_reason="over_budget"),
            event("E4", "Q-M", "200.00", status="reversed"),
            cost("C1", "Q-M", "10", "500.00", "USD", employee="E-US1"), cost("C2", "Q-M", "8", "560.00", "USD", employee="E-US2"),
            cost("C3", "Q-M", "27", "2970.00", "GBP", employee="E-UK1"),
            cost("C4", "Q-M", "2", "99.00", "USD", status="reversed"),
            event("E5", "Q-N", "400.00", currency="GBP"), cost("C5", "Q-N", "3", "150.00", "GBP"))
    margin = {r["contract_number"]: r for r in dw.rows("select * from dw.margin_by_engagement")}
    usd = margin["Q-M"]
    assert (usd["currency"], usd["billed_revenue"], usd["ready_revenue"]) == ("USD", D("1830.50"), D("1000.00"))
    assert (usd["cost"], usd["margin"], usd["margin_pct"]) == (D("1060.00"), D("1770.50"), D("62.6"))
    assert (usd["cost_in_other_currencies"], usd["other_cost_currencies"]) == (True, "GBP")
    gbp = margin["Q-N"]
    assert (gbp["cost"], gbp["margin"], gbp["cost_in_other_currencies"], gbp["other_cost_currencies"]) == (
        D("150.00"), D("250.00"), False, None)
    costs = dw.rows("select * from dw.cost_by_currency order by contract_number, cost_currency")
    assert [(r["contract_number"], r["cost_currency"], r["cost"], r["hours"]) for r in costs] == [
        ("Q-M", "GBP", D("2970.00"), D("27")), ("Q-M", "USD", D("1060.00"), D("18")), ("Q-N", "GBP", D("150.00"), D("3"))]


def test_backlog_is_contract_value_less_billed_reversals_included_and_a_cancelled_engagements_is_what_it_owes(dw):
    dw.load(contract("Q-B", "EUR", "12000.00", model="fixed_fee"), contract("Q-C", "EUR", "5000.00", status="cancelled"),
            event("FF:Q-B:1:202601", "Q-B", "3000.00", "EUR", "billed", "fixed_fee", invoice="I-1"),
            event("FF:Q-B:1:202602", "Q-B", "3000.00", "EUR", "billed", "fixed_fee", invoice="I-2"),
            event("FF:Q-B:1:202602:REV", "Q-B", "-3000.00", "EUR", "billed", "fixed_fee", invoice="I-3"),
            event("FF:Q-B:1:202603", "Q-B", "3000.00", "EUR", "ready", "fixed_fee"),
            event("E-C", "Q-C", "1000.00", "EUR", "billed", invoice="I-4"),
            event("E-C2", "Q-C", "400.00", "EUR", "ready"),  # approved before the cancellation: still owed
            event("E-C3", "Q-C", "700.00", "EUR", "on_hold", hold_reason="contract_cancelled"))
    rows = {r["contract_number"]: r for r in dw.rows("select * from dw.backlog_by_engagement")}
    assert [rows["Q-B"][k] for k in ("currency", "contract_value", "billed", "backlog")] == [
        "EUR", D("12000.00"), D("3000.00"), D("9000.00")]
    assert [rows["Q-C"][k] for k in ("billed", "backlog", "status")] == [D("1000.00"), D("400.00"), "cancelled"]


def test_the_forecast_has_schedule_items_by_month_and_a_time_and_materials_run_rate(dw):
    today = dw.today
    end = month_start(today, 3) - timedelta(days=1)  # the run rate covers this month and the next two
    last = [month_start(today, -k) + timedelta(days=4) for k in (1, 2, 3)]
    dw.load(contract("Q-F", "GBP", model="milestone"),
            schedule_item("Q-F", "MS:A", date(2026, 5, 10), "1000.00", "GBP"),
            schedule_item("Q-F", "FF:1:202605", date(2026, 5, 31), "500.00", "GBP", "eligible", "fixed_fee"),
            schedule_item("Q-F", "FF:1:202606", date(2026, 6, 30), "500.00", "GBP", "billed", "fixed_fee"),
            schedule_item("Q-F", "RT:2:202607", date(2026, 7, 1), "800.00", "GBP", "cancelled", "retainer"),
            contract("Q-T", "USD", end=end), contract("Q-X", "USD", status="cancelled", end=end),
            event("T1", "Q-T", "1000.00", service_date=last[0]), event("T2", "Q-T", "500.00", "USD", "billed", service_date=last[1]),
            event("T3", "Q-T", "300.00", "USD", "billed", service_date=last[2]),
            event("T3:REV", "Q-T", "-300.00", "USD", "billed", service_date=last[2]),
            event("T4", "Q-T", "300.00", "USD", "ready", "expense", service_date=last[2]),
            event("T5", "Q-T", "9999.00", service_date=month_start(today, -4)),  # before the three months
            event("T6", "Q-T", "8888.00", service_date=today),                   # this month's: not a full month
            event("T7", "Q-T", "7777.00", status="on_hold", hold_reason="over_budget", service_date=last[0]),
            event("X1", "Q-X", "3000.00", service_date=last[0]))
    rows = dw.rows("select * from dw.billing_forecast order by kind, contract_number, month")
    assert [(r["contract_number"], r["currency"], r["month"], r["amount"], r["kind"]) for r in rows] == [
        *[("Q-T", "USD", month_start(today, k), D("600.00"), "run_rate") for k in range(3)],
        ("Q-F", "GBP", date(2026, 5, 1), D("1500.00"), "schedule")]


def test_receivables_age_by_currency_and_days_past_due_and_give_dso(dw):
    t = dw.today
    dw.load(receivable("I1", "EUR", "1000.00", due=t + timedelta(days=5), invoice_date=t - timedelta(days=25)),
            receivable("I2", "EUR", "2000.00", "500.00", "partially_paid", due=t - timedelta(days=10),
                       invoice_date=t - timedelta(days=40)),
            receivable("I3", "EUR", "700.00", status="disputed", due=t - timedelta(days=45), invoice_date=t - timedelta(days=75)),
            receivable("I9", "EUR", "100.00", due=t - timedelta(days=30), invoice_date=t - timedelta(days=60)),
            receivable("I10", "EUR", "50.00", due=t, invoice_date=t - timedelta(days=30)),
            receivable("I4", "GBP", "400.00", due=t - timedelta(days=75), invoice_date=t - timedelta(days=105)),
            receivable("I5", "GBP", "900.00", due=t - timedelta(days=120), invoice_date=t - timedelta(days=150)),
            receivable("I6", "GBP", "300.00", "300.00", "paid", due=t - timedelta(days=200), invoice_date=t - timedelta(days=20)),
            receivable("I11", "USD", "800.00", "800.00", "paid", due=t - timedelta(days=5), invoice_date=t - timedelta(days=35)),
            receivable("I7", "GBP", "5000.00", status="void", due=t - timedelta(days=200), invoice_date=t - timedelta(days=10)),
            receivable("I8", "GBP", "6000.00", status="draft", due=t - timedelta(days=200), invoice_date=t - timedelta(days=5)))
    aging = dw.rows("select currency, bucket, amount, invoices from dw.receivables_aging order by currency, bucket_order")
    assert [tuple(r.values()) for r in aging] == [
        ("EUR", "current", D("1050.00"), 2), ("EUR", "1-30", D("1600.00"), 2), ("EUR", "31-60", D("700.00"), 1),
        ("GBP", "61-90", D("400.00"), 1), ("GBP", "90+", D("900.00"), 1)]
    dso = {r["currency"]: r for r in dw.rows("select * from dw.dso_by_currency")}
    # EUR: open 3,350.00 of 3,850.00 invoiced in 90 days; GBP: open 1,300.00 of 300.00 (the paid invoice)
    assert (dso["EUR"]["open_receivable"], dso["EUR"]["invoiced_last_90_days"], dso["EUR"]["dso_days"]) == (
        D("3350.00"), D("3850.00"), D("78.3"))
    assert (dso["GBP"]["open_receivable"], dso["GBP"]["invoiced_last_90_days"], dso["GBP"]["dso_days"]) == (
        D("1300.00"), D("300.00"), D("390.0"))
    # USD: invoiced and paid, nothing open: no days outstanding (not unknown)
    assert (dso["USD"]["open_receivable"], dso["USD"]["invoiced_last_90_days"], dso["USD"]["dso_days"]) == (
        D("0"), D("800.00"), D("0.0"))


def test_dispute_rate_by_month_counts_invoices_disputed_now_or_before(dw):
    march, april = date(2026, 3, 10), date(2026, 4, 2)
    dw.load(receivable("D1", "USD", "100.00", invoice_date=march), receivable("D2", "GBP", "100.00", status="disputed", invoice_date=march),
            receivable("D3", "USD", "100.00", "100.00", "paid", invoice_date=march, dispute_reason="rate queried"),
            receivable("D4", "EUR", "100.00", "50.00", "partially_paid", invoice_date=march),
            receivable("D5", "USD", "100.00", status="draft", invoice_date=march, dispute_reason="x"),
            receivable("D6", "USD", "100.00", status="void", invoice_date=march),
            receivable("D7", "USD", "100.00", invoice_date=april))
    rows = dw.rows("select * from dw.dispute_rate_by_month order by month")
    assert [tuple(r.values()) for r in rows] == [(date(2026, 3, 1), 4, 2, D("50.0")), (date(2026, 4, 1), 1, 0, D("0.0"))]


def test_billing_cycle_time_runs_from_approval_or_eligibility_to_the_invoice(dw):
    dw.load(contract("Q-CT", "USD"), contract("Q-CM", "GBP", model="milestone"),
            time_entry(101, at(date(2026, 3, 2))), time_entry(102, at(date(2026, 3, 5))),
            expense(201, at(date(2026, 3, 10)), "80.00"),
            event("TE:Q-CT:101:a", "Q-CT", "800.00", status="billed", invoice="INV-C1", source_ref="psa.timesheet_entry:101"),
            event("TE:Q-CT:102:b", "Q-CT", "800.00", status="billed", invoice="INV-C1", source_ref="psa.timesheet_entry:102"),
            event("TE:Q-CT:102:b:REV", "Q-CT", "-800.00", status="billed", invoice="INV-C1", source_ref="psa.timesheet_entry:102"),
            event("EX:Q-CT:201:c", "Q-CT", "80.00", status="billed", event_type="expense", invoice="INV-C1",
                  source_ref="psa.expense_line:201"),
            event("TE:Q-CT:103:d", "Q-CT", "800.00", source_ref="psa.timesheet_entry:101"),  # ready: not invoiced yet
            schedule_item("Q-CM", "MS:M1", date(2026, 3, 1), "5000.00", "GBP", "billed", eligible_at=at(date(2026, 3, 1))),
            schedule_item("Q-CM", "FF:1:202603", date(2026, 3, 31), "900.00", "GBP", "billed", "fixed_fee",
                          eligible_at=at(date(2026, 3, 1))),
            event("MS:Q-CM:M1", "Q-CM", "5000.00", "GBP", "billed", "milestone", invoice="INV-C2", source_ref="psa.milestone:1"),
            event("FF:Q-CM:1:202603", "Q-CM", "900.00", "GBP", "billed", "fixed_fee", invoice="INV-C3",
                  source_ref="finance.gl_period:202603"),
            receivable("INV-C1", "USD", "1680.00", invoice_date=date(2026, 3, 12)),
            receivable("INV-C2", "GBP", "5000.00", invoice_date=date(2026, 3, 21)),
            receivable("INV-C3", "GBP", "900.00", invoice_date=date(2026, 4, 5)))
    rows = dw.rows("select * from dw.billing_cycle_time order by month, commercial_model")
    assert [tuple(r.values()) for r in rows] == [
        (date(2026, 3, 1), "milestone", 1, D("20.0"), 20.0),
        (date(2026, 3, 1), "time_and_materials", 3, D("6.3"), 7.0),  # 10, 7 and 2 days
        (date(2026, 4, 1), "milestone", 1, D("35.0"), 35.0)]


def test_held_and_unbilled_leakage_name_their_currency(dw):
    dw.load(contract("Q-L", "USD"),
            event("L1", "Q-L", "120.00", "USD", "on_hold", "expense", hold_reason="currency_mismatch"),
            event("L2", "Q-L", "90.00", "GBP", "on_hold", "expense", hold_reason="currency_mismatch"),
            event("L3", "Q-L", "80.00", "GBP", "on_hold", "expense", hold_reason="currency_mismatch"))
    held = dw.rows("select hold_reason, currency, events, amount from dw.leakage_on_hold order by currency")
    assert [tuple(r.values()) for r in held] == [("currency_mismatch", "GBP", 2, D("170.00")),
                                                 ("currency_mismatch", "USD", 1, D("120.00"))]


# --- the currency rule, as a property -----------------------------------------------------------

CURRENCIES = ("USD", "GBP", "EUR")
# view → (its currency column, its money columns); a view with no money column is listed in NO_MONEY
MONEY = {
    "margin_by_engagement": ("currency", ("contract_value", "billed_revenue", "ready_revenue", "cost", "margin")),
    "cost_by_currency": ("cost_currency", ("cost",)),
    "backlog_by_engagement": ("currency", ("contract_value", "billed", "backlog")),
    "billing_forecast": ("currency", ("amount",)),
    "receivables_aging": ("currency", ("amount",)),
    "dso_by_currency": ("currency", ("open_receivable", "invoiced_last_90_days")),
    "leakage_on_hold": ("currency", ("amount",)),
    "leakage_eligible_unbilled": ("currency", ("amount",)),
    "leakage_unbilled_work": ("unit", ("quantity",)),
}
NO_MONEY = {"weekly_utilisation", "quote_to_cash_cycle", "dispute_rate_by_month", "billing_cycle_time"}
SCALE = 1000
LOAD_TIMES = {"oldest"}  # when rows were loaded (first_seen_at): not a figure of the data


def test_the_warehouse_reference_names_every_table_and_view(wh):
    doc = (PROJECT_ROOT / "docs" / "warehouse.md").read_text()
    names = {r["table_name"] for r in wh.rows("select table_name from information_schema.tables where table_schema = 'dw'")}
    assert len(names) > 20
    missing = sorted(name for name in names if f"| `dw.{name}` |" not in doc)
    assert not missing, f"docs/warehouse.md does not list {missing}"


def test_every_view_is_classified_by_the_currency_rule(wh):
    views = {r["table_name"] for r in wh.rows("select table_name from information_schema.views where table_schema = 'dw'")}
    assert views == set(MONEY) | NO_MONEY


money = st.decimals(min_value=D("-500"), max_value=D("5000"), places=2, allow_nan=False, allow_infinity=False)
days = st.integers(min_value=-200, max_value=60)


@st.composite
def firms(draw):
    """A few engagements in mixed currencies: their events, costs, schedule items and invoices."""
    today = date.today()
    records = []
    contracts = draw(st.lists(st.tuples(st.sampled_from(CURRENCIES), st.sampled_from(["time_and_materials", "fixed_fee"]),
                                        st.sampled_from(["active", "active", "cancelled"])), min_size=1, max_size=3))
    for c, (currency, model, status) in enumerate(contracts):
        number = f"Q-P{c}"
        records.append(contract(number, currency, str(draw(money)), model, status, end=today + timedelta(days=draw(days) + 100)))
        for e in range(draw(st.integers(0, 5))):
            status_ = draw(st.sampled_from(["ready", "billed", "on_hold", "reversed"]))
            in_currency = currency if status_ != "on_hold" else draw(st.sampled_from(CURRENCIES))
            records.append(event(f"E{c}-{e}", number, str(draw(money)), in_currency, status_,
                                 draw(st.sampled_from(["time", "expense", "fixed_fee"])),
                                 service_date=today + timedelta(days=draw(days)), invoice=f"INV-{e % 3}",
                                 hold_reason="currency_mismatch" if status_ == "on_hold" else None))
        for k in range(draw(st.integers(0, 4))):
            records.append(cost(f"C{c}-{k}", number, "8", str(draw(money)), draw(st.sampled_from(CURRENCIES)),
                                draw(st.sampled_from(["posted", "reversed"]))))
        for k in range(draw(st.integers(0, 3))):
            records.append(schedule_item(number, f"FF:1:{k}", today + timedelta(days=draw(days)), str(draw(money)), currency,
                                         draw(st.sampled_from(["planned", "eligible", "billed", "cancelled"])), "fixed_fee"))
    for i in range(draw(st.integers(0, 6))):
        gross = draw(st.decimals(min_value=D("1"), max_value=D("5000"), places=2))
        paid = gross * draw(st.sampled_from([0, D("0.5")]))
        records.append(receivable(f"INV-{i}", draw(st.sampled_from(CURRENCIES)), str(gross), str(paid),
                                  draw(st.sampled_from(["issued", "disputed", "partially_paid", "paid", "void", "draft"])),
                                  invoice_date=today + timedelta(days=draw(days)), due=today + timedelta(days=draw(days))))
    return records


def scaled(record, currency: str):
    """The record with every money field in ``currency`` multiplied by SCALE."""
    fields = {"Contract": ("currency", ("contract_value",)), "BillingEvent": ("currency", ("amount", "unit_price")),
              "ProjectCost": ("cost_currency", ("cost_amount",)), "ScheduleItem": ("currency", ("amount",)),
              "Receivable": ("currency", ("net_amount", "tax_amount", "gross_amount", "paid_amount"))}
    column, amounts = fields[type(record).__name__]
    if getattr(record, column) != currency:
        return record
    return record.model_copy(update={name: getattr(record, name) * SCALE for name in amounts})


def _read(wh) -> dict[str, list[tuple]]:
    """Each money view's rows as (the row's other columns, its currency, its money columns)."""
    out = {}
    for view, (currency_column, columns) in MONEY.items():
        rows = wh.rows(f"select * from dw.{view}")
        out[view] = sorted(
            (tuple((k, str(v)) for k, v in r.items() if k not in columns and k not in LOAD_TIMES), r[currency_column],
             tuple(r[c] for c in columns))
            for r in rows)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=firms(), currency=st.sampled_from(CURRENCIES))
def test_no_view_adds_amounts_of_two_currencies(wh, records, currency):
    """Multiply every amount in one currency by 1,000: every money figure of a row in that currency
    grows 1,000-fold (to the cent a rounding allows) and every other row stays exactly as it was,
    its percentages and days too. A view that added two currencies would move a row of the other."""
    wh.empty()
    wh.load(*records)
    before = _read(wh)
    wh.empty()
    wh.load(*(scaled(r, currency) for r in records))
    after = _read(wh)
    for view in MONEY:
        assert len(before[view]) == len(after[view]), view
        for (key, row_currency, amounts), (key_after, _, amounts_after) in zip(before[view], after[view], strict=True):
            assert key == key_after, (view, key, key_after)
            for old, new in zip(amounts, amounts_after, strict=True):
                if row_currency == currency and old is not None:
                    assert abs(new - old * SCALE) <= D("0.01") * SCALE, (view, key, old, new)
                else:
                    assert new == old, (view, key, row_currency, old, new)
