"""The processor on its own: any order of arrival gives the same rows."""
from collections import Counter
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.capture.envelope import RowChange
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.testing.rows import every_row, outcome


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
