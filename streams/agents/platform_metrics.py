"""Metrics of what surrounds the worker, read when Prometheus scrapes it (at most every
``EVERY_S``): replication slot lag and WAL retained per source database, each connector's and
task's state from Connect's REST API, the business figures of the ERP inbound interface, and
leakage and cycle times from the warehouse's views.
``q2c_observed_up{what}`` says whether each reading succeeded, so a silent part is an alert of its
own rather than a gap. Amounts are floats here only because Prometheus's values are: the sync
computes and writes money as ``Decimal``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.agents import observe
from streams.config import SOURCE_DATABASES, Settings

log = logging.getLogger(__name__)

EVERY_S = 10.0
CONNECTOR_STATES = ("RUNNING", "PAUSED", "FAILED", "UNASSIGNED", "RESTARTING", "STOPPED")


class PlatformCollector(Collector):
    def __init__(self, settings: Settings, today: Callable[[], date] = date.today) -> None:
        self.s, self.today = settings, today
        self.lock = threading.Lock()
        self.read_at = float("-inf")
        self.families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.lock:
            if time.monotonic() - self.read_at >= EVERY_S:
                self.families = self._read()
                self.read_at = time.monotonic()
            return iter(list(self.families))

    def _read(self) -> list[GaugeMetricFamily]:
        up = GaugeMetricFamily("q2c_observed_up", "1 when the last reading of this part succeeded", labels=["what"])
        out: list[GaugeMetricFamily] = [up]
        for what, read in (("replication_slots", self._slots), ("connectors", self._connectors),
                           ("erp_figures", self._figures), ("warehouse_figures", self._warehouse)):
            try:
                out.extend(read())
                up.add_metric([what], 1)
            except Exception as exc:  # noqa: BLE001 - one part unreadable leaves the others
                log.warning("observing %s failed: %s", what, exc)
                up.add_metric([what], 0)
        return out

    def _slots(self) -> list[GaugeMetricFamily]:
        active = GaugeMetricFamily("q2c_replication_slot_active", "1 while a consumer streams from the slot",
                                   labels=["database", "slot"])
        lag = GaugeMetricFamily("q2c_replication_slot_lag_bytes", "WAL written that the slot's consumer has not confirmed",
                                labels=["database", "slot"])
        retained = GaugeMetricFamily("q2c_replication_slot_retained_wal_bytes", "WAL the server keeps for the slot",
                                     labels=["database", "slot"])
        for database in SOURCE_DATABASES:
            for slot in observe.replication_slots(self.s.dsn(database, "sync"), database):
                labels = [slot.database, slot.slot]
                active.add_metric(labels, 1 if slot.active else 0)
                lag.add_metric(labels, slot.lag_bytes)
                retained.add_metric(labels, slot.retained_bytes)
        return [active, lag, retained]

    def _connectors(self) -> list[GaugeMetricFamily]:
        state = GaugeMetricFamily("q2c_connector_state", "1 for the state a connector is in (Connect's REST API)",
                                  labels=["connector", "state"])
        tasks = GaugeMetricFamily("q2c_connector_task_state", "1 for the state a connector's task is in",
                                  labels=["connector", "task", "state"])
        for connector in observe.connectors(self.s.connect_url):
            for name in CONNECTOR_STATES:
                state.add_metric([connector.name, name], 1 if connector.state == name else 0)
            for task_id, task_state, _ in connector.tasks:
                for name in CONNECTOR_STATES:
                    tasks.add_metric([connector.name, str(task_id), name], 1 if task_state == name else 0)
        return [state, tasks]

    def _figures(self) -> list[GaugeMetricFamily]:
        figures = observe.business_figures(self.s.dsn("erp", "sync"), self.today())
        ready = GaugeMetricFamily("q2c_ready_to_bill_amount", "Billing events ready to invoice, their amount",
                                  labels=["currency"])
        for currency, amount in figures.ready_to_bill.items():
            ready.add_metric([currency], float(amount))
        held = GaugeMetricFamily("q2c_billing_events_on_hold", "Billing events on hold", labels=["reason"])
        for reason, count in figures.on_hold.items():
            held.add_metric([reason], count)
        held_amount = GaugeMetricFamily("q2c_billing_events_on_hold_amount", "Billing events on hold, their amount",
                                        labels=["reason", "currency"])
        for (reason, currency), amount in figures.on_hold_amount.items():
            held_amount.add_metric([reason, currency], float(amount))
        unbilled = GaugeMetricFamily("q2c_unbilled_items", "Items eligible to bill and not billed, by age",
                                     labels=["kind", "age"])
        for (kind, age), count in figures.unbilled.items():
            unbilled.add_metric([kind, age], count)
        open_ = GaugeMetricFamily("q2c_receivables_open_amount", "Issued invoices' open amount (gross less paid)",
                                  labels=["currency"])
        overdue = GaugeMetricFamily("q2c_receivables_overdue_amount", "Open amount past its due date",
                                    labels=["currency"])
        for currency, amount in figures.receivables_open.items():
            open_.add_metric([currency], float(amount))
        for currency, amount in figures.receivables_overdue.items():
            overdue.add_metric([currency], float(amount))
        funnel = []
        for name, doc, counts in (("q2c_contracts", "Contracts in the ERP by status", figures.contracts),
                                  ("q2c_billing_events", "Billing events in the ERP by status", figures.billing_events),
                                  ("q2c_receivables", "Invoices (receivables) in the ERP by status", figures.receivables)):
            family = GaugeMetricFamily(name, doc, labels=["status"])
            for status, count in counts.items():
                family.add_metric([status], count)
            funnel.append(family)
        paid = GaugeMetricFamily("q2c_receivables_paid_amount", "Amount paid on invoices", labels=["currency"])
        for currency, amount in figures.paid.items():
            paid.add_metric([currency], float(amount))
        return [ready, held, held_amount, unbilled, open_, overdue, *funnel, paid]

    def _warehouse(self) -> list[GaugeMetricFamily]:
        figures = observe.warehouse_figures(self.s.dsn("warehouse", "sync"))
        unbilled = GaugeMetricFamily("q2c_leakage_unbilled_work", "Approved billable time and expenses with no billing "
                                     "event ready or billed (dw.leakage_unbilled_work)", labels=["kind"])
        for kind in ("time", "expense"):
            unbilled.add_metric([kind], figures.unbilled_work.get(kind, 0))
        eligible = GaugeMetricFamily("q2c_leakage_eligible_unbilled", "Schedule items eligible and not billed "
                                     "(dw.leakage_eligible_unbilled)", value=figures.eligible_unbilled)
        return [unbilled, eligible, *(gauge(name, doc, labels, values) for name, doc, labels, values in (
            ("q2c_quote_to_cash_cycle_seconds", "Mean time from quote approval to each stage, engagements approved in "
             "the last 90 days (dw.quote_to_cash_cycle)", ["stage"], figures.cycle_seconds),
            ("q2c_receivables_aging_amount", "Open receivable by days past due, as of today (dw.receivables_aging)",
             ["currency", "bucket"], figures.aging),
            ("q2c_days_sales_outstanding", "Open receivable over the last 90 days' invoicing, times 90 "
             "(dw.dso_by_currency)", ["currency"], figures.dso_days),
            ("q2c_backlog_amount", "Contract value of active engagements not yet billed (dw.backlog_by_engagement)",
             ["currency"], figures.backlog),
            ("q2c_billing_forecast_amount", "Billing expected this month and the next two: schedule items and the "
             "time-and-materials run rate (dw.billing_forecast)", ["currency", "kind", "month"], figures.forecast),
            ("q2c_invoice_dispute_rate_percent", "Invoices disputed, of those dated in the month, the last three months "
             "(dw.dispute_rate_by_month)", ["month"], figures.dispute_rate),
            ("q2c_billing_cycle_days", "Mean days from approval or eligibility to the invoice, invoices of the last "
             "three months (dw.billing_cycle_time)", ["commercial_model"], figures.billing_cycle_days),
        ))]


def gauge(name: str, doc: str, labels: list[str], values: Mapping[Any, Any]) -> GaugeMetricFamily:
    """A gauge with a sample per entry of ``values``: its key the label values (a tuple, or the
    one label's value), its value a number (a Decimal is exported as a float: a gauge's sample)."""
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key) if isinstance(key, tuple) else [key], float(value))
    return family
