"""Source rows of one time-and-materials engagement with a milestone and an expense allowance, as
the mirror holds them: the builders of the engagement-book and join-graph tests."""
from datetime import UTC, date, datetime

START = datetime(2026, 1, 1, tzinfo=UTC)


def quote_row(qid=1, revision=1, amends=None, status="approved", approved=START, number=None):
    return {"id": qid, "quote_number": number or ("Q-1" if amends is None else f"Q-1-R{revision}"), "opportunity_id": 1,
            "account_id": 1, "revision": revision, "amends_quote_id": amends, "status": status,
            "commercial_model": "time_and_materials", "currency": "GBP", "start_date": date(2026, 1, 1),
            "end_date": date(2026, 6, 30), "payment_terms_days": 30, "discount_pct": "0", "total_amount": "0",
            "approved_at": approved, "updated_at": approved}


def line_row(lid, qid, no, kind, qty="1", price="100", role=None, code=None):
    return {"id": lid, "quote_id": qid, "line_no": no, "line_type": kind, "service_code": "X", "role_code": role,
            "quantity": qty, "unit_price": price, "discount_pct": "0", "milestone_code": code}


def resource_row(rid, role="CONS", cost="50"):
    return {"id": rid, "employee_no": f"E{rid}", "full_name": "A", "email": "a@x", "role_code": role, "home_region": "EMEA",
            "legal_entity": "UK01", "cost_rate": cost, "cost_currency": "GBP", "capacity_hours_week": "40", "active": True}


BASE = [
    ("crm.account", {"id": 1}, {"id": 1, "account_number": "ACC-1", "name": "Acme", "billing_country": "GB",
                                "currency": "GBP", "legal_entity": "UK01"}),
    ("crm.quote", {"id": 1}, quote_row()),
    ("crm.quote_line", {"id": 11}, line_row(11, 1, 1, "role_rate", qty="12", price="100", role="CONS")),
    ("crm.quote_line", {"id": 12}, line_row(12, 1, 2, "expense_allowance", price="250")),
    ("crm.quote_line", {"id": 13}, line_row(13, 1, 3, "milestone", price="1000", code="M1")),
    ("psa.project", {"id": 7}, {"id": 7, "project_code": "P7", "name": "p", "crm_quote_number": "Q-1",
                                "status": "active", "created_by": "user"}),
    ("psa.resource", {"id": 5}, resource_row(5)),
    ("psa.resource", {"id": 6}, resource_row(6, role="ARCH")),
    ("psa.assignment", {"id": 1}, {"id": 1, "project_id": 7, "resource_id": 5, "role_code": "CONS", "planned_hours": "10",
                                   "start_date": date(2026, 1, 1), "end_date": date(2026, 6, 30)}),
    ("finance.gl_tax_rate", {"tax_cd": "STD", "country_cd": "GB", "valid_from": 0},
     {"tax_cd": "STD", "country_cd": "GB", "rate_pct": "20", "valid_from": date(1970, 1, 1)}),
]
