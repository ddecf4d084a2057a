"""A warehouse of its own for a test: a fresh database on the stack's PostgreSQL with the
warehouse's schema and views, loaded with canonical records built here (no pipeline), so a view's
figures can be computed by hand from exactly these rows."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

from streams.canonical.models import BillingEvent, Canonical, Contract, ExpenseItem, ProjectCost, Receivable, ScheduleItem, TimeEntry
from streams.sinks import warehouse

D = Decimal


class Warehouse:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.today: date = conn.execute("select current_date").fetchone()[0]

    def load(self, *models: Canonical) -> None:
        loads = [warehouse.Load(_event_type(m), m.model_dump(), None, getattr(m, "contract_number", None)) for m in models]
        warehouse.write(self.conn, loads)

    def empty(self) -> None:
        tables = [f"dw.{t}" for t in warehouse.KEYS]
        self.conn.execute(f"truncate {', '.join(tables)}")

    def rows(self, sql: str, *args) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql, args).fetchall()


@contextmanager
def warehouse_of_its_own(admin_dsn: str) -> Iterator[Warehouse]:
    name = f"q2c_views_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            warehouse.ensure_schema(conn)
            yield Warehouse(conn)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def _event_type(model: Canonical) -> str:
    return next(t for t, cls in warehouse.EVENT_TYPES.items() if cls is type(model))


# --- records ---------------------------------------------------------------------------------

def contract(number: str, currency: str = "USD", value: str = "10000.00", model: str = "time_and_materials",
             status: str = "active", start: date = date(2026, 1, 1), end: date = date(2026, 12, 31)) -> Contract:
    return Contract(contract_number=number, revision=1, client_account_number="ACC-1", client_name="Client",
                    legal_entity="US01", commercial_model=model, currency=currency, start_date=start, end_date=end,
                    payment_terms_days=30, contract_value=D(value), status=status, trace_id="t")


def event(event_id: str, number: str, amount: str, currency: str = "USD", status: str = "ready",
          event_type: str = "time", service_date: date = date(2026, 3, 2), invoice: str | None = None,
          source_ref: str | None = None, hold_reason: str | None = None) -> BillingEvent:
    return BillingEvent(billing_event_id=event_id, contract_number=number, event_type=event_type, source_system="psa",
                        source_ref=source_ref or f"psa.timesheet_entry:{abs(hash(event_id)) % 10**6}",
                        service_date=service_date, quantity=D("1"), unit_price=D(amount), amount=D(amount),
                        currency=currency, tax_code="STD", status=status, hold_reason=hold_reason,
                        invoice_number=invoice, trace_id="t")


def cost(cost_id: str, number: str, hours: str, amount: str, currency: str, status: str = "posted",
         employee: str = "E1") -> ProjectCost:
    return ProjectCost(cost_event_id=cost_id, contract_number=number, project_code=f"PRJ-{number}", employee_no=employee,
                       work_date=date(2026, 3, 2), hours=D(hours), cost_amount=D(amount), cost_currency=currency,
                       status=status, trace_id="t")


def schedule_item(number: str, key: str, planned: date, amount: str, currency: str = "USD", status: str = "planned",
                  billing_type: str = "milestone", eligible_at: datetime | None = None) -> ScheduleItem:
    return ScheduleItem(contract_number=number, schedule_key=key, billing_type=billing_type, planned_date=planned,
                        amount=D(amount), currency=currency, status=status, eligible_at=eligible_at, trace_id="t")


def receivable(invoice: str, currency: str, gross: str, paid: str = "0", status: str = "issued",
               invoice_date: date = date(2026, 3, 31), due: date | None = None, number: str | None = None,
               dispute_reason: str | None = None) -> Receivable:
    gross_amount = D(gross)
    return Receivable(invoice_number=invoice, contract_number=number, client_account_number="ACC-1",
                      invoice_date=invoice_date, due_date=due or invoice_date, currency=currency,
                      net_amount=gross_amount, tax_amount=D("0"), gross_amount=gross_amount, paid_amount=D(paid),
                      status=status, dispute_reason=dispute_reason)


def time_entry(entry_id: int, approved_at: datetime, hours: str = "8") -> TimeEntry:
    return TimeEntry(id=entry_id, resource_id=1, project_id=1, work_date=approved_at.date(), hours=D(hours), billable=True,
                     status="approved", approved_at=approved_at, approved_by="pm")


def expense(expense_id: int, approved_at: datetime, amount: str, currency: str = "USD") -> ExpenseItem:
    return ExpenseItem(id=expense_id, resource_id=1, project_id=1, expense_date=approved_at.date(), category="travel",
                       amount=D(amount), currency=currency, billable=True, status="approved", status_since=approved_at)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
