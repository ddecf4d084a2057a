"""The processor on its own: any order of arrival gives the same rows."""
from collections import Counter
from datetime import date
from functools import lru_cache

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_the_reference_order_bills_the_event_and_matches_the_invoice():
    expected = outcome(list(every_row()), 100)
    (event,) = expected["eng:Q-1"]["events"].values()
    assert event["status"] == "billed" and event["invoice_number"] == "I1"
    assert expected["inv:I1"]["contract_number"] == "Q-1"
    assert expected["acct:1"]["open_receivable"] == "960.00"


@settings(max_examples=80, deadline=None)
@given(st.permutations(list(range(11))), st.sampled_from([1, 2, 3, 100]))
def test_any_order_of_arrival_gives_the_same_rows(order, batch_size):
    rows = every_row()
    assert outcome([rows[i] for i in order], batch_size) == outcome(list(rows), 100)


def test_an_invoice_line_pointed_at_another_event_re_derives_the_engagement_it_named_before():
    rows = list(every_row())
    line = rows[-1]
    moved = RowChange(line.source, line.schema, line.table, "u", line.key, {**line.row, "src_ref": "MS:Q-2:M1"}, 40, None)
    processor = Processor(SourceMirror(), today=lambda: date(2026, 6, 1))
    processor.commit(processor.process(rows))
    result = processor.process([moved])
    processor.commit(result)
    assert any(e.event_type == "billing_event" for e in result.canonical)  # Q-1 was derived again
    assert processor.ledger.snapshot() == outcome(rows[:-1] + [moved], 100)  # as if the line had always named Q-2


ENGAGEMENT_ROWS = ["crm.quote:1", "crm.quote_line:1", "psa.project:7", "psa.assignment:3", "psa.timesheet_entry:9"]


def publications(order, batch_size) -> tuple[dict[str, str], list[int]]:
    """(the key each source row was last published with, how often a batch published a row
    under one key at most)."""
    processor = Processor(SourceMirror(), today=lambda: date(2026, 6, 1))
    last, most = {}, []
    for i in range(0, len(order), batch_size):
        result = processor.process(order[i:i + batch_size])
        processor.commit(result)
        sources = [(e.ref, e.key) for e in result.canonical if e.ref is not None and e.event_type != "receivable"]
        most.append(max(Counter(sources).values(), default=0))
        last.update(dict(sources))
    return last, most


@settings(max_examples=80, deadline=None)
@given(st.permutations(list(range(11))), st.sampled_from([1, 2, 3, 100]))
def test_a_source_row_ends_published_with_its_contract_and_once_a_batch(order, batch_size):
    """A row that arrived before its engagement could be resolved is published again with the
    contract; one that carried it already is not published twice."""
    rows = every_row()
    last, most = publications([rows[i] for i in order], batch_size)
    assert {ref: last.get(ref) for ref in ENGAGEMENT_ROWS} == {ref: "Q-1" for ref in ENGAGEMENT_ROWS}
    assert set(most) <= {0, 1}
