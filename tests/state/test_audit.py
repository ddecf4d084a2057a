"""The audit trail's records, made where the processor diffs against the ledger: one per write
that changes a row, none for a write that changes nothing, the same again for a batch done again."""
from dataclasses import replace
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state.audit import AuditRecord, Cause, decode_many, encode_many, latest, record
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.testing.rows import ROWS, change

CAUSE = Cause("psa", 23, "812", datetime(2026, 2, 2, 10, tzinfo=UTC))


def test_a_write_that_changes_nothing_is_not_recorded():
    assert record("erp", "erp_inbound.receivable", "I1", {"a": 1}, {"a": 1}, CAUSE) is None
    assert record("erp", "erp_inbound.receivable", "I1", {"a": 1}, None, CAUSE) is None


def test_the_id_says_what_was_written_and_why():
    one = record("erp", "erp_inbound.receivable", "I1", None, {"a": 1, "trace_id": "t"}, CAUSE, "Q-1")
    assert one == record("erp", "erp_inbound.receivable", "I1", None, {"a": 1, "trace_id": "t"}, CAUSE, "Q-1")
    assert one.trace_id == "t" and one.contract_number == "Q-1" and one.before is None
    assert (one.database, one.lsn, one.transaction, one.committed_at) == ("psa", 23, "812", "2026-02-02T10:00:00+00:00")
    later = record("erp", "erp_inbound.receivable", "I1", None, {"a": 1, "trace_id": "t"}, replace(CAUSE, lsn=99), "Q-1")
    assert later.audit_id != one.audit_id  # the same change of a row again, later: a record of its own
    once = [record("psa", "psa.project", "Q-1", None, {"p": 1}, c, once=True) for c in (CAUSE, replace(CAUSE, lsn=99))]
    assert once[0].audit_id == once[1].audit_id  # a row only ever created is recorded once


def test_a_record_survives_its_wire_form():
    one = record("erp", "erp_inbound.billing_event", "TE:1", {"amount": "1.00"}, {"amount": "2.00"}, CAUSE, "Q-1")
    assert AuditRecord.decode(one.encode()) == one
    many = [replace(one, audit_id=str(i)) for i in range(450)]
    values = encode_many(many)
    assert len(values) == 3 and [r for v in values for r in decode_many(v)] == many


def test_the_latest_cause_is_the_last_committed():
    early = Cause("crm", 500, "1", datetime(2026, 1, 1, tzinfo=UTC))
    late = Cause("psa", 10, "2", datetime(2026, 1, 2, tzinfo=UTC))
    assert latest([early, None, late]) == late
    assert latest([None]) is None


def _processor():
    return Processor(SourceMirror(), today=lambda: date(2026, 6, 1))


def test_every_row_the_sinks_write_has_its_record_and_its_cause():
    processor = _processor()
    result = processor.process(ROWS)
    written = {("erp_inbound.contract", c.contract_number) for c in result.erp.contracts}
    written |= {("erp_inbound.billing_schedule", f"{s.contract_number}/{s.schedule_key}") for s in result.erp.schedule}
    written |= {("erp_inbound.billing_event", e.billing_event_id) for e in result.erp.events}
    written |= {("erp_inbound.project_cost", c.cost_event_id) for c in result.erp.costs}
    written |= {("erp_inbound.receivable", r.invoice_number) for r in result.erp.receivables}
    written |= {("crm.account_financials", str(f.account_id)) for f in result.financials}
    assert written and {(r.table, r.key) for r in result.audit} == written
    event = next(r for r in result.audit if r.table == "erp_inbound.billing_event")
    assert event.before is None and event.contract_number == "Q-1" and event.trace_id
    assert (event.database, event.lsn) == ("crm", 11)  # derived whole in one batch: the change that made it an engagement


def test_nothing_new_nothing_recorded_and_a_change_records_before_and_after():
    processor = _processor()
    processor.commit(processor.process(ROWS))
    assert processor.process(ROWS).audit == []  # the same changes again (a redelivery, a replay)
    entry = ROWS[6]
    more = change("psa.timesheet_entry", entry.key, {**entry.row, "hours": "6"}, 40)
    result = processor.process([more])
    events = {r.before is None: r for r in result.audit if r.table == "erp_inbound.billing_event"}
    reversed_, new = events[False], events[True]  # a changed line: its event reversed, a new one for the new hours
    assert '"status":"ready"' in reversed_.before and '"status":"reversed"' in reversed_.after
    assert '"quantity":"8"' in reversed_.after and '"quantity":"6"' in new.after
    assert reversed_.lsn == new.lsn == 40 and reversed_.database == "psa"


def _changes(result) -> list[tuple]:
    return [(r.table, r.key, r.before, r.after) for r in result.audit]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_a_batch_done_again_records_the_same_changes(data):
    """A crash after the sinks wrote and before the ledger recorded it: the batch is derived again
    from the same ledger, and records the same changes of the same rows (the store keeps each once)."""
    rows = data.draw(st.permutations(ROWS))
    cut = data.draw(st.integers(1, len(rows)))
    processor = _processor()
    processor.commit(processor.process(rows[:cut]))
    first = processor.process(rows[cut:])
    again = processor.process(rows[cut:])
    assert _changes(first) == _changes(again)
