"""The ERP inbound interface (erp_inbound.*): contracts, schedule, billing queue, project cost,
receivables. Every write is an upsert by the row's deterministic key."""
from __future__ import annotations

from collections.abc import Sequence

import psycopg

from streams.canonical.models import BillingEvent, Contract, ProjectCost, Receivable, ScheduleItem
from streams.sinks.upsert import upsert
from streams.state.erp_batch import ErpBatch

CONTRACT_COLUMNS = list(Contract.model_fields)
SCHEDULE_COLUMNS = list(ScheduleItem.model_fields)
EVENT_COLUMNS = list(BillingEvent.model_fields)
COST_COLUMNS = list(ProjectCost.model_fields)
RECEIVABLE_COLUMNS = list(Receivable.model_fields)


def _rows(models: Sequence, columns: list[str]):
    return [m.model_dump(include=set(columns)) for m in models]


def write(conn: psycopg.Connection, batch: ErpBatch) -> None:
    """One transaction per batch; contracts first (the schedule references them)."""
    with conn.transaction():
        upsert(conn, "erp_inbound.contract", CONTRACT_COLUMNS, ["contract_number"], _rows(batch.contracts, CONTRACT_COLUMNS))
        upsert(conn, "erp_inbound.billing_schedule", SCHEDULE_COLUMNS, ["contract_number", "schedule_key"],
               _rows(batch.schedule, SCHEDULE_COLUMNS), touch=None)
        upsert(conn, "erp_inbound.billing_event", EVENT_COLUMNS, ["billing_event_id"], _rows(batch.events, EVENT_COLUMNS))
        upsert(conn, "erp_inbound.project_cost", COST_COLUMNS, ["cost_event_id"], _rows(batch.costs, COST_COLUMNS))
        upsert(conn, "erp_inbound.receivable", RECEIVABLE_COLUMNS, ["invoice_number"], _rows(batch.receivables, RECEIVABLE_COLUMNS))
