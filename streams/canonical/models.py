"""Canonical models: what the sync knows of each business object, whichever system it came from.

Money is ``Decimal``; dates are ``date``; source timestamps are UTC ``datetime``. Source entities
(client .. payment) are what capture makes of source rows; derived entities (contract ..
account financials) are what the rules make of them and what the sinks write.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Canonical(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- source entities -------------------------------------------------------------------------

class Client(Canonical):
    """crm.account"""
    id: int
    account_number: str
    name: str
    billing_country: str
    billing_region: str | None = None
    currency: str
    vat_number: str | None = None
    legal_entity: str
    owner_email: str | None = None


QuoteStatus = Literal["draft", "in_review", "approved", "rejected", "superseded", "cancelled"]
CommercialModel = Literal["fixed_fee", "milestone", "time_and_materials", "retainer"]


class Quote(Canonical):
    """crm.quote: an original quote (revision 1) or a change order of an engagement."""
    id: int
    quote_number: str
    opportunity_id: int
    account_id: int
    revision: int
    amends_quote_id: int | None = None
    status: QuoteStatus
    commercial_model: CommercialModel
    currency: str
    start_date: date
    end_date: date
    payment_terms_days: int
    discount_pct: Decimal
    total_amount: Decimal
    approved_at: datetime | None = None
    approved_by: str | None = None
    source_updated_at: datetime | None = None  # the CRM's updated_at
    # When the quote took its current status, by the source's commit time as capture saw it;
    # None when unknown (a snapshot read, a direct read of the table). Not a CRM column.
    status_since: datetime | None = None

    def standing(self) -> str:
        """What ``status_since`` dates: the status itself."""
        return self.status


LineType = Literal["role_rate", "fixed_fee", "milestone", "retainer_fee", "expense_allowance"]


class QuoteLine(Canonical):
    """crm.quote_line"""
    id: int
    quote_id: int
    line_no: int
    line_type: LineType
    service_code: str
    role_code: str | None = None
    description: str | None = None
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal
    milestone_code: str | None = None
    milestone_due: date | None = None
    tax_code: str = "STD"


class Resource(Canonical):
    """psa.resource"""
    id: int
    employee_no: str
    full_name: str
    email: str
    role_code: str
    home_region: str
    legal_entity: str
    cost_rate: Decimal
    cost_currency: str
    capacity_hours_week: Decimal
    active: bool


class Project(Canonical):
    """psa.project"""
    id: int
    project_code: str
    name: str
    crm_quote_number: str | None = None
    account_number: str | None = None
    status: Literal["proposed", "active", "on_hold", "closed"]
    commercial_model: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    project_manager_email: str | None = None
    created_by: str


class BillingMilestone(Canonical):
    """psa.milestone"""
    id: int
    project_id: int
    milestone_code: str
    name: str
    due_date: date | None = None
    status: Literal["planned", "in_progress", "completed", "accepted", "rejected"]
    completed_at: datetime | None = None
    accepted_at: datetime | None = None
    accepted_by: str | None = None


class Assignment(Canonical):
    """psa.assignment"""
    id: int
    project_id: int
    resource_id: int
    role_code: str
    planned_hours: Decimal
    start_date: date
    end_date: date


class TimeEntry(Canonical):
    """psa.timesheet_entry"""
    id: int
    resource_id: int
    project_id: int
    work_date: date
    hours: Decimal
    billable: bool
    status: Literal["draft", "submitted", "approved", "rejected"]
    description: str | None = None
    approved_at: datetime | None = None
    approved_by: str | None = None


class ExpenseItem(Canonical):
    """psa.expense_line"""
    id: int
    resource_id: int
    project_id: int
    expense_date: date
    category: Literal["travel", "lodging", "meals", "mileage", "software", "other"]
    amount: Decimal
    currency: str
    billable: bool
    receipt_id: str | None = None
    status: Literal["draft", "submitted", "approved", "rejected", "reimbursed"]
    source_updated_at: datetime | None = None  # the PSA's updated_at
    # When the line became approved (reimbursed counts as approved), by the source's commit time
    # as capture saw it; None when unknown. Not a PSA column: the PSA keeps no approval time.
    status_since: datetime | None = None

    def standing(self) -> str:
        """What ``status_since`` dates: approved and reimbursed are one standing."""
        return "approved" if self.status in ("approved", "reimbursed") else self.status


class Customer(Canonical):
    """finance.ar_customer (codes trimmed)"""
    cust_no: str
    cust_name: str
    crm_account_no: str | None = None
    country_cd: str
    curr_cd: str
    entity_cd: str
    credit_limit: Decimal | None = None
    status_cd: str
    last_upd_ts: datetime


class FiscalPeriod(Canonical):
    """finance.gl_period"""
    period_cd: str
    start_dt: date
    end_dt: date
    status_cd: Literal["F", "O", "C"]
    last_upd_ts: datetime


class TaxRate(Canonical):
    """finance.gl_tax_rate"""
    tax_cd: str
    country_cd: str
    rate_pct: Decimal
    valid_from: date
    valid_to: date | None = None


class Invoice(Canonical):
    """finance.ar_invoice_hdr"""
    inv_no: str
    cust_no: str
    contract_ref: str | None = None
    inv_dt: date
    due_dt: date
    curr_cd: str
    net_amt: Decimal
    tax_amt: Decimal
    gross_amt: Decimal
    status_cd: Literal["DR", "IS", "DP", "PP", "PD", "VD"]
    dispute_reason: str | None = None
    entity_cd: str
    last_upd_ts: datetime


class InvoiceLine(Canonical):
    """finance.ar_invoice_line"""
    inv_no: str
    line_no: int
    src_type: str
    src_ref: str | None = None
    descr: str | None = None
    qty: Decimal
    unit_prc: Decimal
    net_amt: Decimal
    tax_cd: str


class Payment(Canonical):
    """finance.ar_receipt"""
    rcpt_no: str
    inv_no: str
    cust_no: str
    rcpt_dt: date
    amt: Decimal
    curr_cd: str
    method_cd: str
    last_upd_ts: datetime


# --- derived entities: what the sync writes --------------------------------------------------

class Contract(Canonical):
    """One engagement's contract, as erp_inbound.contract holds it."""
    contract_number: str
    revision: int
    client_account_number: str
    client_name: str
    legal_entity: str
    commercial_model: CommercialModel
    currency: str
    start_date: date
    end_date: date
    payment_terms_days: int
    contract_value: Decimal
    status: Literal["active", "cancelled", "closed"]
    project_code: str | None = None
    trace_id: str


class ScheduleItem(Canonical):
    """One planned billing: a milestone, a fixed-fee installment or a retainer month."""
    contract_number: str
    schedule_key: str
    billing_type: Literal["milestone", "fixed_fee", "retainer"]
    planned_date: date
    amount: Decimal
    currency: str
    status: Literal["planned", "eligible", "billed", "cancelled"]
    eligible_at: datetime | None = None
    trace_id: str


class BillingEvent(Canonical):
    """Something finance may invoice (or could not, with the hold's reason)."""
    billing_event_id: str
    contract_number: str
    event_type: Literal["time", "expense", "milestone", "fixed_fee", "retainer"]
    source_system: Literal["crm", "psa", "finance"]
    source_ref: str
    service_date: date
    description: str | None = None
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    currency: str
    tax_code: str
    tax_rate_pct: Decimal | None = None
    tax_amount: Decimal | None = None
    status: Literal["ready", "on_hold", "billed", "reversed"]
    hold_reason: str | None = None
    invoice_number: str | None = None
    trace_id: str


class ProjectCost(Canonical):
    """Delivery cost of approved hours at the person's cost rate."""
    cost_event_id: str
    contract_number: str
    project_code: str
    employee_no: str
    work_date: date
    hours: Decimal
    cost_amount: Decimal
    cost_currency: str
    status: Literal["posted", "reversed"]
    trace_id: str


class Receivable(Canonical):
    """An invoice of the legacy finance system with its payments applied."""
    invoice_number: str
    contract_number: str | None = None
    client_account_number: str | None = None
    invoice_date: date
    due_date: date
    currency: str
    net_amount: Decimal
    tax_amount: Decimal
    gross_amount: Decimal
    paid_amount: Decimal
    status: Literal["draft", "issued", "disputed", "partially_paid", "paid", "void"]
    dispute_reason: str | None = None
    trace_id: str | None = None
