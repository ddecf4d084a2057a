"""The warehouse, fed from the canonical topics: the views a controller opens first."""
from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from streams.testing.firm import eventually

pytestmark = pytest.mark.stack


def test_margin_utilisation_leakage_and_cycle_times(stack, firm, psa, ids):
    n = ids()
    year = 2100 + (n // 1000) % 800
    number = f"Q-W{n}"
    firm.account(n)
    firm.quote(n, n, number, "time_and_materials", f"{year}-01-01", f"{year}-06-30")
    firm.line(n * 10 + 1, n, 1, "role_rate", qty="10", price="100", role="CONS")
    firm.approve(n)
    pid = psa.project_of(number)["id"]
    psa.resource(n, cost="40")
    psa.assign(n, pid, n, start=f"{year}-01-01", end=f"{year}-06-30")
    monday = date(year, 1, 8) - timedelta(days=date(year, 1, 8).weekday())  # all three in one week
    first, second = monday.isoformat(), (monday + timedelta(days=1)).isoformat()
    psa.time(n, pid, n, "8", day=first)       # ready: 800 revenue, 320 cost
    psa.time(n + 1, pid, n, "4", day=second)  # over budget (NTE 1000): held, leaks
    psa.time(n + 2, pid, n, "2", day=second, billable=False)
    wh = firm.warehouse
    margin = eventually(lambda: wh.one("select * from dw.margin_by_engagement where contract_number = %s and cost = 560", number),
                        what="margin with every cost")
    assert (margin["ready_revenue"], margin["billed_revenue"], margin["margin"]) == (D("800.00"), None or D("0"), D("240.00"))
    util = eventually(lambda: wh.one("select * from dw.weekly_utilisation where employee_no = %s and approved_hours = 14", f"E{n}"),
                      what="utilisation with every approved entry loaded")
    assert (util["billable_hours"], util["approved_hours"], util["utilisation_pct"]) == (D("12.00"), D("14.00"), D("30.0"))
    held = eventually(lambda: wh.one("select * from dw.leakage_on_hold where contract_number = %s", number), what="the held event")
    assert (held["hold_reason"], held["events"], held["amount"]) == ("over_budget", 1, D("400.00"))
    leaks = wh.rows("select source_ref from dw.leakage_unbilled_work where contract_number = %s", number)
    assert leaks == [{"source_ref": f"psa.timesheet_entry:{n + 1}"}]
    cycle = wh.one("select * from dw.quote_to_cash_cycle where contract_number = %s", number)
    assert cycle["approved_at"] is not None and cycle["project_at"] is not None
    assert str(cycle["first_time_on"]) == first and cycle["first_event_at"] is not None
    # a deleted source row leaves the warehouse too
    firm.psa.run("delete from psa.timesheet_entry where id = %s", n + 2)
    eventually(lambda: wh.one("select 1 from dw.time_entry where id = %s", n + 2) is None, what="the deleted entry gone")


def test_a_usd_engagement_costed_in_gbp_and_usd_shows_its_usd_margin_and_its_gbp_cost_apart(stack, firm, psa, ids):
    """Through the real pipeline: a USD time-and-materials engagement staffed with a UK consultant
    (cost rate in GBP) and two US consultants (in USD). Revenue 45 h × 150.00 = USD 6,750.00; USD
    cost 10 h × 50.00 + 8 h × 70.00 = 1,060.00; GBP cost 27 h × 110.00 = 2,970.00, which no USD
    figure may include."""
    n = ids()
    year = 2100 + (n // 1000) % 800
    number = f"Q-WC{n}"
    firm.account(n, currency="USD")
    firm.quote(n, n, number, "time_and_materials", f"{year}-01-01", f"{year}-06-30", currency="USD")
    firm.line(n * 10 + 1, n, 1, "role_rate", qty="100", price="150", role="CONS")
    firm.approve(n)
    pid = psa.project_of(number)["id"]
    for k, cost, currency in ((0, "110", "GBP"), (1, "50", "USD"), (2, "70", "USD")):
        psa.resource(n + k, cost=cost, currency=currency)
        psa.assign(n + k, pid, n + k, start=f"{year}-01-01", end=f"{year}-06-30")
    for t, (rid, hours, day) in enumerate([(n, "9", 5), (n, "9", 6), (n, "9", 7), (n + 1, "10", 5), (n + 2, "8", 6)]):
        psa.time(n + t, pid, rid, hours, day=f"{year}-02-{day:02d}")
    wh = firm.warehouse
    margin = eventually(lambda: wh.one("select * from dw.margin_by_engagement where contract_number = %s"
                                       " and ready_revenue = 6750 and cost_in_other_currencies", number),
                        timeout=90, what="the engagement's margin with every entry")
    assert margin["currency"] == "USD"
    assert (margin["cost"], margin["margin"], margin["other_cost_currencies"]) == (D("1060.00"), D("5690.00"), "GBP")
    costs = eventually(lambda: (rows := wh.rows("select cost_currency, cost, hours from dw.cost_by_currency"
                                                " where contract_number = %s order by cost_currency", number))
                       and len(rows) == 2 and rows[1]["cost"] == D("1060.00") and rows, what="both cost currencies")
    assert [tuple(r.values()) for r in costs] == [("GBP", D("2970.00"), D("27.00")), ("USD", D("1060.00"), D("18.00"))]
    backlog = wh.one("select * from dw.backlog_by_engagement where contract_number = %s", number)
    assert (backlog["currency"], backlog["contract_value"], backlog["billed"], backlog["backlog"]) == (
        "USD", D("15000.00"), D("0"), D("15000.00"))


def test_a_warehouse_that_refuses_connections_degrades_the_worker_until_the_loader_catches_up(stack, firm, ids):
    """The loader runs in a process of its own: its waiting reaches the worker's /health and
    /metrics, and what it waited with is loaded once the warehouse is back."""
    import httpx

    from streams.testing.firm import Db

    admin = Db(stack.s.dsn("postgres"))
    admin.run("alter database warehouse allow_connections false")
    admin.run("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'warehouse'")
    n = ids()
    try:
        firm.account(n)
        firm.quote(n, n, f"Q-WD{n}", "fixed_fee", "2026-11-01", "2027-01-31")
        firm.line(n * 10 + 1, n, 1, "fixed_fee", price="3000")
        firm.approve(n)
        health = eventually(lambda: (h := stack.worker.health())["state"] == "degraded" and h, timeout=60,
                            what="the worker degraded by its loader")
        assert health["reason"].startswith("warehouse loader: warehouse load failing")
        assert "q2c_worker_degraded 1.0" in httpx.get(stack.s.metrics_url).text
    finally:
        admin.run("alter database warehouse allow_connections true")
    eventually(lambda: firm.warehouse.one("select 1 from dw.contract where contract_number = %s", f"Q-WD{n}"), timeout=120,
               what="the contract loaded once the warehouse is back")
    eventually(lambda: stack.worker.health()["state"] == "running", timeout=60, what="the worker running again")
    loaded = [line for line in httpx.get(stack.s.metrics_url).text.splitlines()
              if line.startswith('q2c_sink_rows_total{sink="warehouse"')]
    assert loaded and float(loaded[0].split()[-1]) > 0  # the loader's process counts, on the worker's /metrics
