"""Everything the sync writes for one engagement, as a pure function of its source state.

``derive(view, previous)`` reads the engagement's source rows (``EngagementView``) and what was
written for it before (``previous``: billed events never change, dropped events are reversed) and
returns the contract, its billing schedule, its billing events, its project costs and the PSA
project to provision. Because the result depends on the state, not on the order changes arrived
in, any order of arrival ends in the same rows.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from streams.canonical.models import (
    Assignment,
    BillingEvent,
    BillingMilestone,
    Client,
    Contract,
    ExpenseItem,
    FiscalPeriod,
    Invoice,
    InvoiceLine,
    Project,
    ProjectCost,
    Quote,
    QuoteLine,
    Resource,
    ScheduleItem,
    TaxRate,
    TimeEntry,
)
from streams.rules import contract_life, ids
from streams.rules.contract_life import MIN_TIME
from streams.rules.money import tax_amount, to_cents
from streams.rules.pricing import Revision, approved_revisions, expense_cap, not_to_exceed, rate_for
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

def invoice_billing(lines: Iterable[tuple[InvoiceLine, Invoice]]) -> dict[str, str]:
    """billing_event_id → invoice number, for lines of invoices that are not void (the latest
    invoice by date, then number, when several name one event)."""
    billed: dict[str, tuple[date, str]] = {}
    for line, invoice in lines:
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
    return datetime.combine(period.start_dt, time(0), tzinfo=FINANCE_TIME).astimezone(UTC)


def _event_id(contract: str, schedule_key: str) -> str:
    if schedule_key.startswith("MS:"):
        return ids.milestone_event_id(contract, schedule_key[3:])
    return ids.period_event_id(contract, schedule_key)


# --- the terms every row is priced and held against --------------------------------------------

@dataclass(frozen=True)
class Terms:
    """What each time entry and expense of an engagement is priced and held against. Rows derived
    under equal terms stay right: a change that leaves the terms equal re-derives only its rows."""
    contract_no: str
    trace: str
    revisions: list[Revision]
    currency: str
    country: str
    tax_rates: list[TaxRate]
    budget: Decimal        # the T&M not-to-exceed of the current revision
    cap: Decimal | None    # the expense cap of the current revision
    term: tuple[date, date]
    cancelled: datetime | None  # the contract is cancelled now, since then
    bills_time: bool       # time and materials, with a project
    project_code: str | None  # None: no PSA project yet (no time, expenses or costs)
    _rates: dict = field(default_factory=dict, compare=False, repr=False)

    def rate_for(self, role: str, approved_at: datetime | None) -> tuple[Decimal, str] | None:
        key = (role, approved_at)
        if key not in self._rates:
            self._rates[key] = rate_for(self.revisions, role, approved_at)
        return self._rates[key]

    def tax_rate(self, tax_code: str, on: date) -> Decimal | None:
        return rate_on(self.tax_rates, tax_code, self.country, on)


def terms_of(view: EngagementView, revisions: list[Revision], cancelled: datetime | None) -> Terms:
    """``cancelled``: when the contract was cancelled, if it is now (``contract_life.in_force``)."""
    current_quote, _ = revisions[-1]
    return Terms(
        contract_no=view.contract_number, trace=ids.trace_id(view.contract_number), revisions=revisions,
        currency=current_quote.currency, country=view.client.billing_country, tax_rates=list(view.tax_rates),
        budget=not_to_exceed(revisions[-1]), cap=expense_cap(revisions[-1]),
        term=(current_quote.start_date, current_quote.end_date),
        cancelled=cancelled,
        bills_time=current_quote.commercial_model == "time_and_materials" and view.project is not None,
        project_code=view.project.project_code if view.project is not None else None,
    )


# --- derivation ----------------------------------------------------------------------------------

@dataclass
class Head:
    """The engagement-wide part of a derivation: the contract, its schedule and the schedule's
    events, and the terms its rows are priced against."""
    terms: Terms
    outputs: EngagementOutputs  # contract, schedule, provision (no events, no costs)
    schedule_events: dict[str, BillingEvent]
    invoiced: Mapping[str, str]


@dataclass
class Rows:
    """What the rules make of an engagement's time entries and expenses, by source row id."""
    time: dict[int, Candidate] = field(default_factory=dict)
    expenses: dict[int, Candidate] = field(default_factory=dict)
    holds: dict[str, str | None] = field(default_factory=dict)  # billing_event_id → final hold
    costs: dict[int, ProjectCost] = field(default_factory=dict)
    resource_of: dict[int, int] = field(default_factory=dict)  # approved time entry id → its person

    def events(self, terms: Terms) -> dict[str, BillingEvent]:
        return {c.event_id: billing_event(terms, c, self.holds[c.event_id])
                for c in (*self.time.values(), *self.expenses.values())}


def derive(view: EngagementView, previous: EngagementOutputs | None = None) -> EngagementOutputs:
    head = derive_head(view)
    if head is None:
        return _withdrawn(previous) if previous and previous.contract else EngagementOutputs()
    rows = derive_rows(view, head.terms)
    return assemble(head, rows, previous)


def derive_head(view: EngagementView, invoiced: Mapping[str, str] | None = None) -> Head | None:
    """The contract, the schedule and its events; None when the engagement has no approved
    revision or no client (yet, or any more). ``invoiced``: billing_event_id → invoice number
    (default: from the view's invoice lines)."""
    revisions = approved_revisions(view.quotes, view.lines)
    if not revisions or view.client is None:
        return None
    contract_no = view.contract_number
    cancellations = contract_life.cancellations(revisions)
    terms = terms_of(view, revisions, cancellations[-1])
    trace = terms.trace
    out = EngagementOutputs()
    current_quote, current_lines = revisions[-1]
    invoiced = invoice_billing(view.invoice_lines) if invoiced is None else invoiced

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
        contract_value += terms.budget
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
                (line.milestone_code, line.description or line.milestone_code, line.milestone_due)
                for line in sorted(current_lines, key=lambda item: item.line_no)
                if line.line_type == "milestone" and line.milestone_code
            ),
        )

    events: dict[str, BillingEvent] = {}
    for item in out.schedule.values():
        entry = entries[item.schedule_key]
        if item.status in ("eligible", "billed"):
            event = _schedule_event(view, terms, item, entry)
        elif entry.withdrawn and _trigger(view, item.schedule_key) is not None:
            event = _schedule_event(view, terms, item, entry, hold="contract_cancelled")
        else:
            continue
        events[event.billing_event_id] = event
    return Head(terms, out, events, invoiced)


def derive_rows(view: EngagementView, terms: Terms) -> Rows:
    """Every time entry's and expense's candidate event, the running totals' holds, the costs."""
    rows = Rows()
    if terms.project_code is None:
        return rows
    assignments = assignments_by_resource(view.assignments)
    if terms.bills_time:
        for entry in view.time_entries:
            candidate = time_candidate(terms, entry, assignments.get(entry.resource_id, ()), view.resources.get(entry.resource_id))
            if candidate is not None:
                rows.time[entry.id] = candidate
    for expense in view.expenses:
        candidate = expense_candidate(terms, expense)
        if candidate is not None:
            rows.expenses[expense.id] = candidate
    for entry in view.time_entries:
        cost = project_cost(terms, entry, view.resources.get(entry.resource_id))
        if cost is not None:
            rows.costs[entry.id] = cost
        if entry.status == "approved":
            rows.resource_of[entry.id] = entry.resource_id
    rows.holds.update(running_holds(sorted(rows.time.values(), key=lambda c: c.order), terms.budget, "over_budget"))
    if terms.cap is not None:
        rows.holds.update(running_holds(sorted(rows.expenses.values(), key=lambda c: c.order), terms.cap, "over_expense_cap"))
    else:
        rows.holds.update({c.event_id: c.hold for c in rows.expenses.values()})
    return rows


def assemble(head: Head, rows: Rows, previous: EngagementOutputs | None) -> EngagementOutputs:
    """The outputs of a head and its rows, against what was written before (``previous``)."""
    out = EngagementOutputs(contract=head.outputs.contract, schedule=dict(head.outputs.schedule),
                            provision=head.outputs.provision)
    desired = {**head.schedule_events, **rows.events(head.terms)}
    out.events = _settle(desired, previous, head.invoiced)
    out.costs = {c.cost_event_id: c for c in rows.costs.values()}
    if previous:
        for cost_id, cost in previous.costs.items():
            if cost_id not in out.costs:
                out.costs[cost_id] = reversed_cost(cost)
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
    out.costs = {k: reversed_cost(c) for k, c in previous.costs.items()}
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
        if trigger is not None:  # eligible, or billed after it was: not before the contract existed
            eligible_at = max(trigger, first_approved or MIN_TIME)
            eligible_at = None if eligible_at == MIN_TIME else eligible_at
    return ScheduleItem(
        contract_number=contract_no, schedule_key=key, billing_type=item.billing_type,
        planned_date=item.planned_date, amount=item.amount, currency=currency, status=status,
        eligible_at=eligible_at, trace_id=trace,
    )


def _event(terms: Terms, *, event_id, event_type, source_system, source_ref, service_date,
           description, quantity, unit_price, amount, tax_code, hold=None) -> BillingEvent:
    rate = terms.tax_rate(tax_code, service_date)
    if hold is None and rate is None:
        hold = "no_tax_rate"
    return BillingEvent(
        billing_event_id=event_id, contract_number=terms.contract_no, event_type=event_type,
        source_system=source_system, source_ref=source_ref, service_date=service_date,
        description=description, quantity=quantity, unit_price=unit_price, amount=amount,
        currency=terms.currency, tax_code=tax_code, tax_rate_pct=rate,
        tax_amount=tax_amount(amount, rate) if rate is not None else None,
        status="on_hold" if hold else "ready", hold_reason=hold, trace_id=terms.trace,
    )


def _schedule_event(view, terms: Terms, item: ScheduleItem, entry: ScheduleEntry, hold: str | None = None) -> BillingEvent:
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
        terms, event_id=_event_id(terms.contract_no, item.schedule_key), event_type=item.billing_type,
        source_system=source_system, source_ref=source_ref, service_date=service_date,
        description=entry.item.description, quantity=Decimal("1.00"), unit_price=item.amount, amount=item.amount,
        tax_code=entry.item.tax_code, hold=hold,
    )


# --- one row at a time: time entries, expenses, costs ---------------------------------------------

@dataclass(frozen=True, slots=True)
class Candidate:
    """A time entry's or an expense's billing event before its running total (the T&M budget,
    the expense cap) is applied: ``hold`` is what holds it on its own. It keeps of its row only
    what the event shows (an engagement's book holds one per row: not the whole source row)."""
    event_type: str  # "time" or "expense"
    row_id: int
    service_date: date
    description: str | None
    quantity: Decimal
    event_id: str
    order: tuple  # where it stands in the running total: (approved_at, id) for time, (id,) for expenses
    unit_price: Decimal
    amount: Decimal
    tax_code: str
    hold: str | None
    taxed: bool  # a tax rate exists on its service date (without one it is held, and uses no budget)


def assignments_by_resource(assignments: Iterable[Assignment]) -> dict[int, list[Assignment]]:
    """A project's assignments per person, by id (the first covering a work date wins)."""
    found: dict[int, list[Assignment]] = {}
    for a in sorted(assignments, key=lambda a: a.id):
        found.setdefault(a.resource_id, []).append(a)
    return found


def time_candidate(terms: Terms, entry: TimeEntry, assignments: Iterable[Assignment],
                   resource: Resource | None) -> Candidate | None:
    """The billing event of an approved billable entry, priced at the role's net rate in the
    revision in force when it was approved; None for any other entry."""
    if entry.status != "approved" or not entry.billable:
        return None
    digest = ids.state_digest(entry.resource_id, entry.project_id, entry.work_date, entry.hours, entry.billable, entry.description)
    assignment = next((a for a in assignments if a.start_date <= entry.work_date <= a.end_date), None)
    role = assignment.role_code if assignment else (resource.role_code if resource else None)
    priced = terms.rate_for(role, entry.approved_at) if role else None
    unit_price, tax_code = priced if priced else (Decimal("0.00"), "STD")
    amount = to_cents(entry.hours * unit_price)
    hold = None
    if contract_life.after(terms.cancelled, entry.approved_at):
        hold = "contract_cancelled"
    elif entry.hours <= 0 or entry.hours > 24:
        hold = "invalid_hours"
    elif not (terms.term[0] <= entry.work_date <= terms.term[1]):
        hold = "outside_term"
    elif assignment is None:
        hold = "not_assigned"
    elif priced is None:
        hold = "no_rate_for_role"
    return Candidate("time", entry.id, entry.work_date, entry.description, entry.hours,
                     ids.time_event_id(terms.contract_no, entry.id, digest), (entry.approved_at or MIN_TIME, entry.id),
                     unit_price, amount, tax_code, hold, terms.tax_rate(tax_code, entry.work_date) is not None)


def expense_candidate(terms: Terms, expense: ExpenseItem) -> Candidate | None:
    """The billing event of an approved billable expense line, at cost; None for any other."""
    if expense.status not in ("approved", "reimbursed") or not expense.billable:
        return None
    digest = ids.state_digest(expense.resource_id, expense.project_id, expense.expense_date, expense.category,
                              expense.amount, expense.currency, expense.billable, expense.receipt_id)
    hold = None
    if contract_life.after(terms.cancelled, contract_life.expense_approved_at(expense)):
        hold = "contract_cancelled"
    elif terms.cap is None:
        hold = "expenses_not_billable"
    elif expense.currency != terms.currency:
        hold = "currency_mismatch"
    return Candidate("expense", expense.id, expense.expense_date, expense.category, Decimal("1.00"),
                     ids.expense_event_id(terms.contract_no, expense.id, digest), (expense.id,),
                     expense.amount, expense.amount, "STD", hold, terms.tax_rate("STD", expense.expense_date) is not None)


def running_holds(candidates: Iterable[Candidate], limit: Decimal, reason: str) -> Iterator[tuple[str, str | None]]:
    """(event id, final hold) in running-total order: an event that would take the total of the
    ready events past ``limit`` is held for ``reason``; a held event uses up nothing."""
    running = Decimal("0.00")
    for c in candidates:
        hold = c.hold
        if hold is None and running + c.amount > limit:
            hold = reason
        if hold is None and c.taxed:
            running += c.amount
        yield c.event_id, hold


def billing_event(terms: Terms, c: Candidate, hold: str | None) -> BillingEvent:
    table = "timesheet_entry" if c.event_type == "time" else "expense_line"
    return _event(
        terms, event_id=c.event_id, event_type=c.event_type, source_system="psa",
        source_ref=ids.source_ref("psa", table, c.row_id), service_date=c.service_date,
        description=c.description, quantity=c.quantity, unit_price=c.unit_price, amount=c.amount,
        tax_code=c.tax_code, hold=hold,
    )


def project_cost(terms: Terms, entry: TimeEntry, resource: Resource | None) -> ProjectCost | None:
    """The delivery cost of an approved entry (billable or not) at the person's cost rate."""
    if entry.status != "approved" or resource is None or terms.project_code is None:
        return None
    digest = ids.state_digest(entry.resource_id, entry.project_id, entry.work_date, entry.hours, entry.billable,
                              entry.description, resource.cost_rate, resource.cost_currency)
    cost_id = ids.cost_event_id(terms.contract_no, entry.id, digest)
    return ProjectCost(
        cost_event_id=cost_id, contract_number=terms.contract_no, project_code=terms.project_code,
        employee_no=resource.employee_no, work_date=entry.work_date, hours=entry.hours,
        cost_amount=to_cents(entry.hours * resource.cost_rate), cost_currency=resource.cost_currency,
        status="posted", trace_id=terms.trace,
    )


def reversed_cost(cost: ProjectCost) -> ProjectCost:
    return cost if cost.status == "reversed" else cost.model_copy(update={"status": "reversed"})


# --- history: invoicing, reversals ----------------------------------------------------------------

def _settle(desired: dict[str, BillingEvent], previous: EngagementOutputs | None, invoiced: Mapping[str, str]) -> dict[str, BillingEvent]:
    """Apply invoicing and history: invoiced events are billed; an event that is no longer wanted
    is reversed, or, if it was billed, stays billed and gets a ``:REV`` event with negated amounts."""
    events: dict[str, BillingEvent] = {}
    for event_id, event in desired.items():
        events.update(settle(event_id, event, None, invoiced))
    for event_id, before in (previous.events if previous else {}).items():
        if event_id in events:
            continue
        events.update(settle(event_id, None, before, invoiced))
    return events


def settle(event_id: str, desired: BillingEvent | None, before: BillingEvent | None,
           invoiced: Mapping[str, str]) -> dict[str, BillingEvent]:
    """What one event becomes: the event the rules want now (``desired``), billed if an invoice
    bills it; or, not wanted any more, what was written before (``before``) reversed, or kept
    billed with a ``:REV`` event with negated amounts. A ``:REV`` event itself never changes."""
    if desired is not None:
        if event_id in invoiced:
            desired = desired.model_copy(update={"status": "billed", "hold_reason": None, "invoice_number": invoiced[event_id]})
        return {event_id: desired}
    if before is None:
        return {}
    if event_id.endswith(":REV"):
        return {event_id: before}
    if event_id not in invoiced:
        return {event_id: before.model_copy(update={"status": "reversed", "invoice_number": None})}
    rev_id = ids.reversal_id(event_id)
    rev = before.model_copy(update={
        "billing_event_id": rev_id, "quantity": -before.quantity, "amount": -before.amount,
        "tax_amount": -before.tax_amount if before.tax_amount is not None else None,
        "status": "ready", "hold_reason": None, "invoice_number": invoiced.get(rev_id),
    })
    if rev_id in invoiced:
        rev = rev.model_copy(update={"status": "billed"})
    return {event_id: before.model_copy(update={"status": "billed", "hold_reason": None, "invoice_number": invoiced[event_id]}),
            rev_id: rev}
