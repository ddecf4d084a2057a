"""The platform's readings (``streams.agents.observe``) against the real stack: replication
slots, Connect's connectors, and the ERP's business figures computed from rows of a test's own."""
from datetime import date, timedelta
from decimal import Decimal

import pytest

from streams.agents import observe
from streams.stack.postgres import SYSTEMS_DIR
from streams.testing.firm import Db, database_for_sync, dsn_of, eventually

pytestmark = pytest.mark.stack

TODAY = date(2026, 12, 4)


def test_each_source_database_has_an_active_slot(stack):
    def streaming(database: str) -> bool:
        slots = observe.replication_slots(stack.s.dsn(database, "sync"), database)
        assert slots and all(slot.database == database for slot in slots)
        assert all(slot.lag_bytes >= 0 and slot.retained_bytes >= 0 for slot in slots)
        assert any(slot.active for slot in slots), slots
        return True

    for database in ("crm", "psa", "finance"):  # a restarted Connect or database streams again within a minute
        eventually(lambda d=database: streaming(d), timeout=90, what=f"{database}'s slot streaming")


def test_every_connector_and_task_runs(stack):
    found = {c.name: c for c in observe.connectors(stack.s.connect_url)}
    assert {"q2c-crm", "q2c-psa", "q2c-finance"} <= set(found)
    for name in ("q2c-crm", "q2c-psa", "q2c-finance"):
        assert found[name].state == "RUNNING"
        assert found[name].tasks and all(state == "RUNNING" for _, state, _ in found[name].tasks)


def _event(erp: Db, n: int, status: str, amount: str, currency: str, days_ago: int, hold: str | None = None) -> None:
    erp.run("insert into erp_inbound.billing_event (billing_event_id, contract_number, event_type, source_system,"
            " source_ref, service_date, quantity, unit_price, amount, currency, tax_code, status, hold_reason, trace_id)"
            " values (%s, 'C-1', 'time', 'psa', %s, %s, 1, %s, %s, %s, 'STD', %s, %s, 't')",
            f"E{n}", f"psa.timesheet_entry:{n}", TODAY - timedelta(days=days_ago), amount, amount, currency, status, hold)


def test_business_figures_are_the_erps_by_currency_reason_and_age(stack):
    dsn = database_for_sync(stack.s, "erp_observe", (SYSTEMS_DIR / "erp.sql").read_text())
    erp = Db(dsn_of(stack.s, "erp_observe", "admin"))
    for table in ("billing_event", "billing_schedule", "receivable"):
        erp.run(f"delete from erp_inbound.{table}")
    erp.run("delete from erp_inbound.contract")
    _event(erp, 1, "ready", "100.00", "GBP", 3)
    _event(erp, 2, "ready", "50.50", "GBP", 45)
    _event(erp, 3, "ready", "10.00", "USD", 200)
    _event(erp, 4, "on_hold", "70.00", "GBP", 1, "no_tax_rate")
    _event(erp, 5, "on_hold", "30.00", "EUR", 1, "no_tax_rate")
    _event(erp, 6, "on_hold", "5.00", "GBP", 1, "over_budget")
    _event(erp, 7, "billed", "999.00", "GBP", 1)
    erp.run("insert into erp_inbound.contract (contract_number, revision, client_account_number, client_name, legal_entity,"
            " commercial_model, currency, start_date, end_date, payment_terms_days, contract_value, status, trace_id)"
            " values ('C-1', 1, 'A', 'Client', 'UK01', 'fixed_fee', 'GBP', '2026-01-01', '2027-01-01', 30, 1000, 'active', 't')")
    for key, status, eligible_days_ago in (("MS:A", "eligible", 10), ("MS:B", "eligible", 100), ("MS:C", "planned", None)):
        erp.run("insert into erp_inbound.billing_schedule (contract_number, schedule_key, billing_type, planned_date, amount,"
                " currency, status, eligible_at, trace_id) values ('C-1', %s, 'milestone', %s, 100, 'GBP', %s, %s, 't')",
                key, TODAY, status, None if eligible_days_ago is None else TODAY - timedelta(days=eligible_days_ago))
    for number, currency, gross, paid, due_days, status in (
            ("I-1", "GBP", "120.00", "20.00", -5, "issued"),          # overdue
            ("I-2", "EUR", "200.00", "50.00", 10, "partially_paid"),  # open, not due
            ("I-3", "EUR", "80.00", "0.00", -40, "disputed"),         # overdue
            ("I-4", "GBP", "500.00", "500.00", -5, "paid"),           # closed
            ("I-5", "GBP", "60.00", "0.00", -5, "void")):             # not owed
        erp.run("insert into erp_inbound.receivable (invoice_number, invoice_date, due_date, currency, net_amount,"
                " tax_amount, gross_amount, paid_amount, status) values (%s, %s, %s, %s, %s, 0, %s, %s, %s)",
                number, TODAY - timedelta(days=30), TODAY + timedelta(days=due_days), currency, gross, gross, paid, status)

    figures = observe.business_figures(dsn, TODAY)

    assert figures.ready_to_bill == {"GBP": Decimal("150.50"), "USD": Decimal("10.00")}
    assert figures.on_hold == {"no_tax_rate": 2, "over_budget": 1}
    assert figures.on_hold_amount == {("no_tax_rate", "GBP"): Decimal("70.00"), ("no_tax_rate", "EUR"): Decimal("30.00"),
                                      ("over_budget", "GBP"): Decimal("5.00")}
    assert figures.unbilled == {("billing_event", "0-7d"): 1, ("billing_event", "31-90d"): 1,
                                ("billing_event", "90d+"): 1, ("schedule_item", "8-30d"): 1, ("schedule_item", "90d+"): 1}
    assert figures.receivables_open == {"GBP": Decimal("100.00"), "EUR": Decimal("230.00")}
    assert figures.receivables_overdue == {"GBP": Decimal("100.00"), "EUR": Decimal("80.00")}
    assert figures.contracts == {"active": 1}
    assert figures.billing_events == {"ready": 3, "on_hold": 3, "billed": 1}
    assert figures.receivables == {"issued": 1, "partially_paid": 1, "disputed": 1, "paid": 1, "void": 1}
    assert figures.paid == {"GBP": Decimal("520.00"), "EUR": Decimal("50.00")}


def test_warehouse_figures_read_the_leakage_and_cycle_views(stack):
    figures = observe.warehouse_figures(stack.s.dsn("warehouse", "sync"))
    assert all(kind in ("time", "expense") and count >= 0 for kind, count in figures.unbilled_work.items())
    assert figures.eligible_unbilled >= 0
    assert set(figures.cycle_seconds) <= set(observe.CYCLE_STAGES)


def test_age_buckets():
    assert [observe.age_bucket(d) for d in (0, 7, 8, 30, 31, 90, 91, 4000)] == [
        "0-7d", "0-7d", "8-30d", "8-30d", "31-90d", "31-90d", "90d+", "90d+"]
