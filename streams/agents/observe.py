"""What the platform around the sync is doing, read where it is kept: PostgreSQL's replication
slots, Kafka Connect's REST API, and the ERP inbound tables the sync writes (the business
figures finance watches). Each reader returns plain values, or raises; ``streams.agents.platform_metrics``
turns them into metrics. No personal data: amounts and counts by currency, reason and age only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg

from streams.connectors import State, states

# an observation must never hold a scrape for long, nor a lock in a database the firm runs
_PG_OPTIONS = "-c statement_timeout=5s -c lock_timeout=1s"
AGE_BUCKETS = ((7, "0-7d"), (30, "8-30d"), (90, "31-90d"))  # and "90d+"
RECEIVABLE_OPEN = ("issued", "disputed", "partially_paid")


@dataclass(frozen=True)
class Slot:
    database: str
    slot: str
    active: bool
    lag_bytes: int       # WAL written that the slot's consumer has not confirmed
    retained_bytes: int  # WAL the server keeps for the slot


def replication_slots(dsn: str, database: str) -> list[Slot]:
    """The logical replication slots of ``database``'s server that stream ``database``."""
    with psycopg.connect(dsn, connect_timeout=3, autocommit=True, options=_PG_OPTIONS) as conn:
        rows = conn.execute(
            "select slot_name, active,"
            " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,"
            " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint"
            " from pg_replication_slots where database = current_database()").fetchall()
    return [Slot(database, name, bool(active), int(lag), int(retained)) for name, active, lag, retained in rows]


def connectors(connect_url: str) -> list[State]:
    """Every connector of the Connect cluster and its tasks' states."""
    return states(connect_url)


@dataclass(frozen=True)
class BusinessFigures:
    ready_to_bill: dict[str, object]          # currency -> amount of billing events ready
    on_hold: dict[str, int]                   # hold reason -> billing events on hold
    on_hold_amount: dict[tuple[str, str], object]  # (reason, currency) -> their amount
    unbilled: dict[tuple[str, str], int]      # (kind, age bucket) -> items eligible and not billed
    receivables_open: dict[str, object]       # currency -> open amount (gross - paid)
    receivables_overdue: dict[str, object]    # currency -> open amount past its due date
    # the quote-to-cash funnel: rows by status, and cash received
    contracts: dict[str, int]                 # status -> contracts
    billing_events: dict[str, int]            # status -> billing events
    receivables: dict[str, int]               # status -> invoices
    paid: dict[str, object]                   # currency -> amount paid on invoices


def age_bucket(days: int) -> str:
    for limit, name in AGE_BUCKETS:
        if days <= limit:
            return name
    return "90d+"


def business_figures(erp_dsn: str, today: date) -> BusinessFigures:
    """The figures of the ERP inbound interface finance acts on, as of ``today``. Unbilled:
    billing events ``ready`` by the age of their service date, schedule items ``eligible`` by the
    age of their eligibility."""
    with psycopg.connect(erp_dsn, connect_timeout=3, autocommit=True, options=_PG_OPTIONS) as conn:
        ready = dict(conn.execute("select currency, sum(amount) from erp_inbound.billing_event"
                                  " where status = 'ready' group by currency").fetchall())
        held = conn.execute("select hold_reason, currency, count(*), sum(amount) from erp_inbound.billing_event"
                            " where status = 'on_hold' group by hold_reason, currency").fetchall()
        events = conn.execute("select %s::date - service_date, count(*) from erp_inbound.billing_event"
                              " where status = 'ready' group by 1", (today,)).fetchall()
        items = conn.execute("select %s::date - coalesce(eligible_at::date, planned_date), count(*)"
                             " from erp_inbound.billing_schedule where status = 'eligible' group by 1", (today,)).fetchall()
        receivables = conn.execute(
            "select currency, sum(gross_amount - paid_amount),"
            " sum(gross_amount - paid_amount) filter (where due_date < %s)"
            " from erp_inbound.receivable where status = any(%s) group by currency", (today, list(RECEIVABLE_OPEN))).fetchall()
        funnel = {table: dict(conn.execute(f"select status, count(*) from erp_inbound.{table} group by status").fetchall())
                  for table in ("contract", "billing_event", "receivable")}
        paid = dict(conn.execute("select currency, sum(paid_amount) from erp_inbound.receivable"
                                 " where status <> 'void' group by currency").fetchall())
    on_hold: dict[str, int] = {}
    on_hold_amount: dict[tuple[str, str], object] = {}
    for reason, currency, count, amount in held:
        reason = reason or "unspecified"
        on_hold[reason] = on_hold.get(reason, 0) + count
        on_hold_amount[reason, currency] = amount
    unbilled: dict[tuple[str, str], int] = {}
    for kind, rows in (("billing_event", events), ("schedule_item", items)):
        for days, count in rows:
            key = (kind, age_bucket(max(int(days), 0)))
            unbilled[key] = unbilled.get(key, 0) + count
    return BusinessFigures(
        ready_to_bill=ready, on_hold=on_hold, on_hold_amount=on_hold_amount, unbilled=unbilled,
        receivables_open={c: open_ for c, open_, _ in receivables},
        receivables_overdue={c: overdue or 0 for c, _, overdue in receivables},
        contracts=funnel["contract"], billing_events=funnel["billing_event"], receivables=funnel["receivable"], paid=paid)


@dataclass(frozen=True)
class WarehouseFigures:
    unbilled_work: dict[str, int]      # kind (time, expense) -> approved billable rows with no event ready or billed
    eligible_unbilled: int             # schedule items eligible and not billed
    cycle_seconds: dict[str, float]    # stage -> mean time from quote approval, over engagements approved in 90 days
    aging: dict[tuple[str, str], Decimal] = field(default_factory=dict)     # (currency, bucket) -> open amount
    dso_days: dict[str, Decimal] = field(default_factory=dict)              # currency -> days sales outstanding
    backlog: dict[str, Decimal] = field(default_factory=dict)               # currency -> contract value not yet billed
    forecast: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # (currency, kind, YYYY-MM) -> amount
    dispute_rate: dict[str, Decimal] = field(default_factory=dict)          # YYYY-MM -> % of invoices disputed
    billing_cycle_days: dict[str, float] = field(default_factory=dict)      # commercial model -> mean days to invoice


CYCLE_STAGES = {  # stage -> its column in dw.quote_to_cash_cycle, in seconds
    "project": "extract(epoch from approval_to_project)",
    "first_time": "days_to_first_time * 86400.0",  # numeric: days as int4 times 86400 overflow past 68 years
    "first_event": "extract(epoch from approval_to_first_event)",
    "first_invoice": "days_to_first_invoice * 86400.0",
    "first_payment": "days_to_first_payment * 86400.0",
}


def warehouse_figures(warehouse_dsn: str) -> WarehouseFigures:
    """Leakage and cycle times from the warehouse's views (streams/sinks/warehouse_views.sql)."""
    with psycopg.connect(warehouse_dsn, connect_timeout=3, autocommit=True, options=_PG_OPTIONS) as conn:
        unbilled = dict(conn.execute("select kind, count(*) from dw.leakage_unbilled_work group by kind").fetchall())
        eligible = conn.execute("select count(*) from dw.leakage_eligible_unbilled").fetchone()[0]
        columns = ", ".join(f"avg({expr})::float8" for expr in CYCLE_STAGES.values())
        means = conn.execute(f"select {columns} from dw.quote_to_cash_cycle"
                             " where approved_at >= now() - interval '90 days'").fetchone()
        aging = {(c, b): a for c, b, a in conn.execute("select currency, bucket, amount from dw.receivables_aging")}
        dso = {c: d for c, d in conn.execute("select currency, dso_days from dw.dso_by_currency where dso_days is not null")}
        backlog = dict(conn.execute("select currency, sum(backlog) from dw.backlog_by_engagement group by currency").fetchall())
        forecast = {(c, k, m): a for c, k, m, a in conn.execute(  # this month and the next two
            "select currency, kind, to_char(month, 'YYYY-MM'), sum(amount) from dw.billing_forecast"
            " where month >= date_trunc('month', current_date) and month < date_trunc('month', current_date) + interval '3 months'"
            " group by currency, kind, month")}
        disputes = {m: r for m, r in conn.execute(  # the last three months of invoices
            "select to_char(month, 'YYYY-MM'), dispute_rate_pct from dw.dispute_rate_by_month"
            " where month > date_trunc('month', current_date) - interval '3 months' and month <= current_date")}
        cycle_days = {model: days for model, days in conn.execute(  # invoices of the last three months, each event once
            "select commercial_model, (sum(avg_days * events) / sum(events))::float8 from dw.billing_cycle_time"
            " where month > date_trunc('month', current_date) - interval '3 months' group by commercial_model")}
    return WarehouseFigures(unbilled, int(eligible),
                            {stage: mean for stage, mean in zip(CYCLE_STAGES, means, strict=False) if mean is not None},
                            aging, dso, backlog, forecast, disputes, cycle_days)
