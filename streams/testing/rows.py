"""One time-and-materials engagement as Debezium captures it, its account, project, person,
assignment, an approved time entry, a tax rate and an invoice, and what one worker derives from
them: the reference rows of the state layer's tests (in any order of arrival, batching, redelivery
or scaling out, the same outcome) and of the benchmarks."""
from __future__ import annotations

from datetime import date
from functools import lru_cache

from streams.capture.envelope import RowChange
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor


def change(table_id, key, row, lsn):
    source, table = table_id.split(".")
    return RowChange(source, source, table, "c", key, row, lsn, None)


ROWS = [
    change("crm.account", {"id": 1}, {"id": 1, "account_number": "ACC-1", "name": "Acme", "billing_country": "GB",
                                      "currency": "GBP", "legal_entity": "UK01"}, 10),
    change("crm.quote", {"id": 1}, {"id": 1, "quote_number": "Q-1", "opportunity_id": 1, "account_id": 1, "revision": 1,
                                    "status": "approved", "commercial_model": "time_and_materials", "currency": "GBP",
                                    "start_date": date(2026, 1, 1), "end_date": date(2026, 12, 31), "payment_terms_days": 30,
                                    "discount_pct": "0", "total_amount": "0", "approved_at": "2026-01-01T00:00:00+00:00"}, 11),
    change("crm.quote_line", {"id": 1}, {"id": 1, "quote_id": 1, "line_no": 1, "line_type": "role_rate", "service_code": "X",
                                         "role_code": "CONS", "quantity": "100", "unit_price": "100", "discount_pct": "0"}, 12),
    change("psa.project", {"id": 7}, {"id": 7, "project_code": "P7", "name": "p", "crm_quote_number": "Q-1",
                                      "status": "active", "created_by": "user"}, 20),
    change("psa.resource", {"id": 5}, {"id": 5, "employee_no": "E5", "full_name": "A", "email": "a@x", "role_code": "CONS",
                                       "home_region": "EMEA", "legal_entity": "UK01", "cost_rate": "50",
                                       "cost_currency": "GBP", "capacity_hours_week": "40", "active": True}, 21),
    change("psa.assignment", {"id": 3}, {"id": 3, "project_id": 7, "resource_id": 5, "role_code": "CONS",
                                         "planned_hours": "10", "start_date": date(2026, 1, 1), "end_date": date(2026, 12, 31)}, 22),
    change("psa.timesheet_entry", {"id": 9}, {"id": 9, "resource_id": 5, "project_id": 7, "work_date": date(2026, 2, 2),
                                              "hours": "8", "billable": True, "status": "approved",
                                              "approved_at": "2026-02-02T10:00:00+00:00"}, 23),
    change("finance.gl_tax_rate", {"tax_cd": "STD", "country_cd": "GB", "valid_from": 0},
           {"tax_cd": "STD", "country_cd": "GB", "rate_pct": "20", "valid_from": date(1970, 1, 1)}, 30),
    change("finance.ar_customer", {"cust_no": "C1"}, {"cust_no": "C1", "cust_name": "Acme", "crm_account_no": " acc-1 ",
                                                      "country_cd": "GB", "curr_cd": "GBP", "entity_cd": "UK01", "status_cd": "A",
                                                      "last_upd_ts": "2026-03-01T00:00:00+00:00"}, 31),
    change("finance.ar_invoice_hdr", {"inv_no": "I1"}, {"inv_no": "I1", "cust_no": "C1", "contract_ref": "wrong",
                                                        "inv_dt": date(2026, 3, 1),
                                                         "due_dt": date(2026, 3, 31), "curr_cd": "GBP", "net_amt": "800", "tax_amt": "160",
                                                         "gross_amt": "960", "status_cd": "IS", "entity_cd": "UK01",
                                                         "last_upd_ts": "2026-03-01T00:00:00+00:00"}, 32),
]


def outcome(order, batch_size):
    processor = Processor(SourceMirror(), today=lambda: date(2026, 6, 1))
    for i in range(0, len(order), batch_size):
        processor.commit(processor.process(order[i:i + batch_size]))
    return processor.ledger.snapshot()


@lru_cache(maxsize=1)
def every_row() -> tuple:
    """ROWS plus an invoice line that bills the time event (its id is deterministic: derive it)."""
    (event_id,) = outcome(ROWS, 100)["eng:Q-1"]["events"]
    line = change("finance.ar_invoice_line", {"inv_no": "I1", "line_no": 1},
                  {"inv_no": "I1", "line_no": 1, "src_type": "TE", "src_ref": event_id, "qty": "8", "unit_prc": "100",
                   "net_amt": "800", "tax_cd": "STD"}, 33)
    return tuple(ROWS + [line])
