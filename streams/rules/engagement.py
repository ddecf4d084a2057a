"""Everything the sync writes for one engagement, as a pure function of its source state.

``derive(view, previous)`` reads the engagement's source rows (``EngagementView``) and what was
written for it before (``previous``: billed events never change, dropped events are reversed) and
returns the contract, its billing schedule, its billing events, its project costs and the PSA
project to provision. Because the result depends on the state, not on the order changes arrived
in, any order of arrival ends in the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo
from decimal import Decimal

from streams.canonical.models import (
    Assignment, BillingEvent, BillingMilestone, Client, Contract, ExpenseItem, FiscalPeriod,
    Invoice, InvoiceLine, Project, ProjectCost, Quote, QuoteLine, Resource, ScheduleItem, TaxRate,
    TimeEntry,
)
from streams.rules import contract_life, ids
from streams.rules.contract_life import MIN_TIME
from streams.rules.money import to_cents, tax_amount
from streams.rules.pricing import (
    Revision, approved_revisions, expense_cap, not_to_exceed, rate_for,
)
from streams.rules.schedule import ScheduleEntry, reshape
from streams.rules.tax import rate_on

FINANCE_TIME = ZoneInfo("Europe/London")  # the legacy finance system's clock: its periods start at its midnight


@dataclass(frozen=True)
class EngagementView:
    """The source rows of one engagement (and the shared reference rows it needs)."""
    contract_number: str
    quotes: list[Quote]
    lines: dict[int, list[QuoteLine]]
    client: Client | None = None
    project: Project | None = None
    milestones: list[BillingMilestone] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    time_entries: list[TimeEntry] = field(default_factory=list)
    expenses: list[ExpenseItem] = field(default_factory=list)
    resources: dict[int, Resource] = field(default_factory=dict)
    periods: dict[str, FiscalPeriod] = field(default_factory=dict)
    tax_rates: list[TaxRate] = field(default_factory=list)
    invoice_lines: list[tuple[InvoiceLine, Invoice]] = field(default_factory=list)


@dataclass(frozen=True)
class ProjectProvision:
    """A PSA project (and its milestones) the sync creates for an engagement that has none."""
    project_code: str
    name: str
    crm_quote_number: str
    account_number: str
    commercial_model: str
    start_date: date
    end_date: date
    milestones: tuple[tuple[str, str, date | None], ...]  # (code, name, due)


@dataclass
class EngagementOutputs:
    contract: Contract | None = None
    schedule: dict[str, ScheduleItem] = field(default_factory=dict)
    events: dict[str, BillingEvent] = field(default_factory=dict)
    costs: dict[str, ProjectCost] = field(default_factory=dict)
    provision: ProjectProvision | None = None


# --- eligibility ---------------------------------------------------------------------------------

def _invoiced(view: EngagementView) -> dict[str, str]:
    """billing_event_id → invoice number, for lines of invoices that are not void."""
    billed: dict[str, tuple[date, str]] = {}
    for line, invoice in view.invoice_lines:
        if invoice.status_cd == "VD" or not line.src_ref:
            continue
        key = line.src_ref.strip()
        if key not in billed or (invoice.inv_dt, invoice.inv_no) > billed[key]:
            billed[key] = (invoice.inv_dt, invoice.inv_no)
    return {k: v[1] for k, v in billed.items()}


def _milestone(view: EngagementView, code: str) -> BillingMilestone | None:
    found = [m for m in view.milestones if m.milestone_code == code]
    return found[0] if found else None


def _trigger(view: EngagementView, schedule_key: str) -> datetime | None:
    """When the item's trigger happened (milestone accepted, period opened), or None if not yet."""
    kind, rest = schedule_key.split(":", 1)
    if kind == "MS":
        milestone = _milestone(view, rest)
        if milestone is None or milestone.status != "accepted":
            return None
        return milestone.accepted_at or MIN_TIME
    period = view.periods.get(rest.split(":")[-1])
    if period is None or period.status_cd not in ("O", "C"):
        return None
    if period.status_cd == "O":
        return period.last_upd_ts
    # closed: the time it was opened is gone (closing moved last_upd_ts); it was open by its start
    return datetime.combine(period.start_dt, time(0), tzinfo=FINANCE_TIME).astimezone(timezone.utc)


def _event_id(contract: str, schedule_key: str) -> str:
    if schedule_key.startswith("MS:"):
        return ids.milestone_event_id(contract, schedule_key[3:])
    return ids.period_event_id(contract, schedule_key)


# --- derivation ----------------------------------------------------------------------------------

def derive(view: EngagementView, previous: EngagementOutputs | None = None) -> EngagementOutputs:
    contract_no = view.contract_number
    trace = ids.trace_id(contract_no)
    revisions = approved_revisions(view.quotes, view.lines)
    out = EngagementOutputs()
    if not revisions or view.client is None:
        return _withdrawn(previous) if previous and previous.contract else out
    current_quote, current_lines = revisions[-1]
    invoiced = _invoiced(view)
    cancellations = contract_life.cancellations(revisions)
    cancelled = cancellations[-1]  # the contract is cancelled now, since then

    def locked_at(key: str, when: datetime | None) -> bool:
        """Eligible or billed at ``when``: its trigger came by then, or an invoice bills it."""
        trigger = _trigger(view, key)
        return (trigger is not None and trigger <= (when or MIN_TIME)) or _event_id(contract_no, key) in invoiced

    entries = reshape(revisions, locked_at, cancellations)
    currency = current_quote.currency
    for key, entry in entries.items():
        out.schedule[key] = _schedule_item(view, contract_no, trace, currency, key, entry, revisions[0][0].approved_at, invoiced)

    contract_value = sum((i.amount for i in out.schedule.values() if i.status != "cancelled"), Decimal("0.00"))
    if current_quote.commercial_model == "time_and_materials":
        contract_value += not_to_exceed(revisions[-1])
    status = "active"
    if current_quote.status == "cancelled":
        status = "cancelled"
    elif view.project is not None and view.project.status == "closed":
        status = "closed"
    project_code = view.project.project_code if view.project else f"PRJ-{contract_no}"
    out.contract = Contract(
        contract_number=contract_no, revision=current_quote.revision,
        client_account_number=view.client.account_number, client_name=view.client.name,
        legal_entity=view.client.legal_entity, commercial_model=current_quote.commercial_model,
        currency=currency, start_date=current_quote.start_date, end_date=current_quote.end_date,
        payment_terms_days=current_quote.payment_terms_days, contract_value=to_cents(contract_value),
        status=status, project_code=project_code, trace_id=trace,
    )
    if view.project is None and status != "cancelled":
        out.provision = ProjectProvision(
            project_code=project_code, name=f"{view.client.name} {contract_no}"[:200],
            crm_quote_number=contract_no, account_number=view.client.account_number,
            commercial_model=current_quote.commercial_model, start_date=current_quote.start_date,
            end_date=current_quote.end_date,
            milestones=tuple(
                (l.milestone_code, l.description or l.milestone_code, l.milestone_due)
                for l in sorted(current_lines, key=lambda l: l.line_no)
                if l.line_type == "milestone" and l.milestone_code
            ),
        )

    desired: dict[str, BillingEvent] = {}
    for item in out.schedule.values():
        entry = entries[item.schedule_key]
        if item.status in ("eligible", "billed"):
            event = _schedule_event(view, contract_no, trace, item, entry)
        elif entry.withdrawn and _trigger(view, item.schedule_key) is not None:
            event = _schedule_event(view, contract_no, trace, item, entry, hold="contract_cancelled")
        else:
            continue
        desired[event.billing_event_id] = event
    if current_quote.commercial_model == "time_and_materials" and view.project is not None:
        desired.update(_time_events(view, contract_no, trace, revisions, currency, cancelled))
    if view.project is not None:
        desired.update(_expense_events(view, contract_no, trace, revisions[-1], currency, cancelled))
        out.costs = _costs(view, contract_no, trace)
    out.events = _settle(desired, previous, invoiced)
    if previous:
        for cost_id, cost in previous.costs.items():
            if cost_id not in out.costs:
                out.costs[cost_id] = cost.model_copy(update={"status": "reversed"})
    return out


def _withdrawn(previous: EngagementOutputs) -> EngagementOutputs:
    """The engagement's approved quote is gone (deleted at the source): cancel what was written."""
    out = EngagementOutputs(contract=previous.contract.model_copy(update={"status": "cancelled"}))
    out.schedule = {
        k: (i if i.status in ("eligible", "billed") else i.model_copy(update={"status": "cancelled"}))
        for k, i in previous.schedule.items()
    }
    still_billed = {e.billing_event_id: e.invoice_number for e in previous.events.values() if e.status == "billed"}
    out.events = _settle({}, previous, still_billed)
    out.costs = {k: c.model_copy(update={"status": "reversed"}) for k, c in previous.costs.items()}
    return out


def _schedule_item(view, contract_no, trace, currency, key, entry: ScheduleEntry, first_approved, invoiced) -> ScheduleItem:
    item = entry.item
    status, eligible_at = entry.status, None
    if status != "cancelled":
        trigger = _trigger(view, key)
        if _event_id(contract_no, key) in invoiced:
            status = "billed"
        elif trigger is not None:
            status = "eligible"
        else:
            status = "planned"
        if status == "eligible":  # not before the contract existed
            eligible_at = max(trigger, first_approved or MIN_TIME)
            eligible_at = None if eligible_at == MIN_TIME else eligible_at
    return ScheduleItem(
        contract_number=contract_no, schedule_key=key, billing_type=item.billing_type,
        planned_date=item.planned_date, amount=item.amount, currency=currency, status=status,
        eligible_at=eligible_at, trace_id=trace,
    )


def _event(view, *, event_id, contract_no, trace, event_type, source_system, source_ref, service_date,
           description, quantity, unit_price, amount, currency, tax_code, hold=None) -> BillingEvent:
    rate = rate_on(view.tax_rates, tax_code, view.client.billing_country, service_date)
    if hold is None and rate is None:
        hold = "no_tax_rate"
    return BillingEvent(
        billing_event_id=event_id, contract_number=contract_no, event_type=event_type,
        source_system=source_system, source_ref=source_ref, service_date=service_date,
        description=description, quantity=quantity, unit_price=unit_price, amount=amount,
        currency=currency, tax_code=tax_code, tax_rate_pct=rate,
        tax_amount=tax_amount(amount, rate) if rate is not None else None,
        status="on_hold" if hold else "ready", hold_reason=hold, trace_id=trace,
    )


def _schedule_event(view, contract_no, trace, item: ScheduleItem, entry: ScheduleEntry, hold: str | None = None) -> BillingEvent:
    kind = item.schedule_key.split(":", 1)[0]
    if kind == "MS":
        milestone = _milestone(view, item.schedule_key[3:])
        source_ref = ids.source_ref("psa", "milestone", milestone.id) if milestone else f"crm.quote_line:{entry.item.line_no}"
        service_date = milestone.accepted_at.date() if milestone and milestone.accepted_at else item.planned_date
        source_system = "psa"
    else:
        period_cd = item.schedule_key.rsplit(":", 1)[1]
        source_ref, service_date, source_system = f"finance.gl_period:{period_cd}", item.planned_date, "finance"
    return _event(
        view, event_id=_event_id(contract_no, item.schedule_key), contract_no=contract_no, trace=trace,
        event_type=item.billing_type, source_system=source_system, source_ref=source_ref,
        service_date=service_date, description=entry.item.description, quantity=Decimal("1.00"),
        unit_price=item.amount, amount=item.amount, currency=item.currency, tax_code=entry.item.tax_code, hold=hold,
    )


def _time_events(view: EngagementView, contract_no, trace, revisions: list[Revision], currency,
                 cancelled: datetime | None) -> dict[str, BillingEvent]:
    current_quote, _ = revisions[-1]
    budget = not_to_exceed(revisions[-1])
    running = Decimal("0.00")
    events: dict[str, BillingEvent] = {}
    approved = [t for t in view.time_entries if t.status == "approved" and t.billable]
    for entry in sorted(approved, key=lambda t: (t.approved_at or MIN_TIME, t.id)):
        digest = ids.state_digest(entry.resource_id, entry.project_id, entry.work_date, entry.hours, entry.billable, entry.description)
        event_id = ids.time_event_id(contract_no, entry.id, digest)
        assignment = next(
            (a for a in sorted(view.assignments, key=lambda a: a.id)
             if a.resource_id == entry.resource_id and a.start_date <= entry.work_date <= a.end_date),
            None,
        )
        resource = view.resources.get(entry.resource_id)
        role = assignment.role_code if assignment else (resource.role_code if resource else None)
        priced = rate_for(revisions, role, entry.approved_at) if role else None
        unit_price, tax_code = priced if priced else (Decimal("0.00"), "STD")
        amount = to_cents(entry.hours * unit_price)
        hold = None
        if contract_life.after(cancelled, entry.approved_at):
            hold = "contract_cancelled"
        elif entry.hours <= 0 or entry.hours > 24:
            hold = "invalid_hours"
        elif not (current_quote.start_date <= entry.work_date <= current_quote.end_date):
            hold = "outside_term"
        elif assignment is None:
            hold = "not_assigned"
        elif priced is None:
            hold = "no_rate_for_role"
        elif running + amount > budget:
            hold = "over_budget"
        event = _event(
            view, event_id=event_id, contract_no=contract_no, trace=trace, event_type="time",
            source_system="psa", source_ref=ids.source_ref("psa", "timesheet_entry", entry.id),
            service_date=entry.work_date, description=entry.description, quantity=entry.hours,
            unit_price=unit_price, amount=amount, currency=currency, tax_code=tax_code, hold=hold,
        )
        if event.status == "ready":
            running += amount
        events[event_id] = event
    return events


def _expense_events(view: EngagementView, contract_no, trace, current: Revision, currency,
                    cancelled: datetime | None) -> dict[str, BillingEvent]:
    cap = expense_cap(current)
    running = Decimal("0.00")
    events: dict[str, BillingEvent] = {}
    billable = [e for e in view.expenses if e.status in ("approved", "reimbursed") and e.billable]
    for expense in sorted(billable, key=lambda e: e.id):
        digest = ids.state_digest(expense.resource_id, expense.project_id, expense.expense_date, expense.category,
                                  expense.amount, expense.currency, expense.billable, expense.receipt_id)
        event_id = ids.expense_event_id(contract_no, expense.id, digest)
        hold = None
        if contract_life.after(cancelled, contract_life.expense_approved_at(expense)):
            hold = "contract_cancelled"
        elif cap is None:
            hold = "expenses_not_billable"
        elif expense.currency != currency:
            hold = "currency_mismatch"
        elif running + expense.amount > cap:
            hold = "over_expense_cap"
        event = _event(
            view, event_id=event_id, contract_no=contract_no, trace=trace, event_type="expense",
            source_system="psa", source_ref=ids.source_ref("psa", "expense_line", expense.id),
            service_date=expense.expense_date, description=expense.category, quantity=Decimal("1.00"),
            unit_price=expense.amount, amount=expense.amount, currency=currency, tax_code="STD", hold=hold,
        )
        if event.status == "ready":
            running += expense.amount
        events[event_id] = event
    return events


def _costs(view: EngagementView, contract_no, trace) -> dict[str, ProjectCost]:
    costs = {}
    for entry in view.time_entries:
        resource = view.resources.get(entry.resource_id)
        if entry.status != "approved" or resource is None:
            continue
        digest = ids.state_digest(entry.resource_id, entry.project_id, entry.work_date, entry.hours, entry.billable,
                                  entry.description, resource.cost_rate, resource.cost_currency)
        cost_id = ids.cost_event_id(contract_no, entry.id, digest)
        costs[cost_id] = ProjectCost(
            cost_event_id=cost_id, contract_number=contract_no, project_code=view.project.project_code,
            employee_no=resource.employee_no, work_date=entry.work_date, hours=entry.hours,
            cost_amount=to_cents(entry.hours * resource.cost_rate), cost_currency=resource.cost_currency,
            status="posted", trace_id=trace,
        )
    return costs


def _settle(desired: dict[str, BillingEvent], previous: EngagementOutputs | None, invoiced: dict[str, str]) -> dict[str, BillingEvent]:
    """Apply invoicing and history: invoiced events are billed; an event that is no longer wanted
    is reversed, or, if it was billed, stays billed and gets a ``:REV`` event with negated amounts."""
    events: dict[str, BillingEvent] = {}
    for event_id, event in desired.items():
        if event_id in invoiced:
            event = event.model_copy(update={"status": "billed", "hold_reason": None, "invoice_number": invoiced[event_id]})
        events[event_id] = event
    for event_id, before in (previous.events if previous else {}).items():
        if event_id in events:
            continue
        if event_id.endswith(":REV"):
            events[event_id] = before
            continue
        if event_id in invoiced:
            billed = before.model_copy(update={"status": "billed", "invoice_number": invoiced[event_id]})
            events[event_id] = billed
            rev_id = ids.reversal_id(event_id)
            events[rev_id] = before.model_copy(update={
                "billing_event_id": rev_id, "quantity": -before.quantity, "amount": -before.amount,
                "tax_amount": -before.tax_amount if before.tax_amount is not None else None,
                "status": "ready", "hold_reason": None, "invoice_number": invoiced.get(rev_id),
            })
            if rev_id in invoiced:
                events[rev_id] = events[rev_id].model_copy(update={"status": "billed"})
        else:
            events[event_id] = before.model_copy(update={"status": "reversed", "invoice_number": None})
    return events
