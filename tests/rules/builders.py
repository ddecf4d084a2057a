"""Small builders of canonical models for rule tests: only what a test cares about is named."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

from streams.canonical.models import (
    Assignment,
    BillingMilestone,
    Client,
    ExpenseItem,
    FiscalPeriod,
    Invoice,
    InvoiceLine,
    Project,
    Quote,
    QuoteLine,
    Resource,
    TaxRate,
    TimeEntry,
)
from streams.rules.engagement import EngagementView

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def quote(qid=1, number=None, model="fixed_fee", status="approved", revision=1, amends=None,
          start=date(2026, 11, 1), end=date(2027, 4, 30), discount="0", approved=T0, currency="GBP", account=1,
          cancelled=None, since=None):
    """``cancelled``: the time the CRM stamped a cancellation after approval (``updated_at``);
    ``since``: when capture saw the quote take its status."""
    was_approved = status in ("approved", "superseded") or (status == "cancelled" and (cancelled or since))
    return Quote(
        id=qid, quote_number=number or (f"Q-{qid}" if amends is None else f"Q-1-R{revision}"), opportunity_id=1,
        account_id=account, revision=revision, amends_quote_id=amends, status=status, commercial_model=model,
        currency=currency, start_date=start, end_date=end, payment_terms_days=30, discount_pct=D(discount),
        total_amount=D("0"), approved_at=approved if was_approved else None,
        source_updated_at=cancelled if cancelled else approved, status_since=since,
    )


def line(no, kind, qty="1", price="1000", discount="0", code=None, due=None, role=None, tax="STD", qid=1, lid=None):
    return QuoteLine(
        id=lid or qid * 100 + no, quote_id=qid, line_no=no, line_type=kind, service_code="IMPL", role_code=role,
        quantity=D(qty), unit_price=D(price), discount_pct=D(discount), milestone_code=code, milestone_due=due,
        tax_code=tax,
    )


def client(country="GB", currency="GBP"):
    return Client(id=1, account_number="ACC-000001", name="Acme Ltd", billing_country=country,
                  currency=currency, legal_entity="UK01")


def project(pid=7, number="Q-1", status="active", created_by="user"):
    return Project(id=pid, project_code=f"PRJ-{number}", name="p", crm_quote_number=number, status=status,
                   created_by=created_by)


def milestone(code, status="accepted", accepted=T0, mid=None, pid=7):
    return BillingMilestone(id=mid or abs(hash(code)) % 1000, project_id=pid, milestone_code=code, name=code,
                            status=status, accepted_at=accepted if status == "accepted" else None)


def resource(rid=5, role="CONS", cost="80"):
    return Resource(id=rid, employee_no=f"E{rid}", full_name="A Person", email="a@x", role_code=role,
                    home_region="EMEA", legal_entity="UK01", cost_rate=D(cost), cost_currency="GBP",
                    capacity_hours_week=D("40"), active=True)


def assignment(aid=1, rid=5, role="CONS", start=date(2026, 11, 1), end=date(2027, 4, 30), pid=7):
    return Assignment(id=aid, project_id=pid, resource_id=rid, role_code=role, planned_hours=D("100"),
                      start_date=start, end_date=end)


def time_entry(tid, hours="8", day=date(2026, 11, 10), status="approved", billable=True, rid=5, approved=T0, pid=7, desc=None):
    return TimeEntry(id=tid, resource_id=rid, project_id=pid, work_date=day, hours=D(hours), billable=billable,
                     status=status, approved_at=approved if status == "approved" else None, description=desc)


def expense(eid, amount="100", currency="GBP", status="approved", billable=True, pid=7, updated=T0):
    return ExpenseItem(id=eid, resource_id=5, project_id=pid, expense_date=date(2026, 11, 12), category="travel",
                       amount=D(amount), currency=currency, billable=billable, status=status, source_updated_at=updated)


def period(cd, status="O", opened=T0):
    y, m = int(cd[:4]), int(cd[4:])
    return FiscalPeriod(period_cd=cd, start_dt=date(y, m, 1), end_dt=date(y, m, 28), status_cd=status, last_upd_ts=opened)


def tax(code="STD", country="GB", rate="20", valid_from=date(2000, 1, 1), valid_to=None):
    return TaxRate(tax_cd=code, country_cd=country, rate_pct=D(rate), valid_from=valid_from, valid_to=valid_to)


def invoice(no, status="IS", contract_ref=None, gross="120", inv_dt=date(2026, 12, 1), due=date(2026, 12, 31), cust="C1"):
    return Invoice(inv_no=no, cust_no=cust, contract_ref=contract_ref, inv_dt=inv_dt, due_dt=due, curr_cd="GBP",
                   net_amt=D("100"), tax_amt=D("20"), gross_amt=D(gross), status_cd=status, entity_cd="UK01",
                   last_upd_ts=datetime(2026, 12, 1, tzinfo=UTC))


def invoice_line(no, line_no, src_ref, src_type="MS"):
    return InvoiceLine(inv_no=no, line_no=line_no, src_type=src_type, src_ref=src_ref, qty=D("1"),
                       unit_prc=D("100"), net_amt=D("100"), tax_cd="STD")


def view(quotes, lines, **kw):
    by_quote = {}
    for quote_line in lines:
        by_quote.setdefault(quote_line.quote_id, []).append(quote_line)
    kw.setdefault("client", client())
    kw.setdefault("tax_rates", [tax()])
    return EngagementView(contract_number=quotes[0].quote_number, quotes=quotes, lines=by_quote, **kw)
