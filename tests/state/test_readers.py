"""What each engagement reads, recorded: the changes that reach an engagement are those under its
reads (``streams.state.readers``). The join graph check (``test_join_graph``) proves the record
complete; here: it stays small, it forgets what an engagement no longer reads, and a mirror
written by an earlier version gets one."""
from datetime import date

from streams.state.keys import META_READERS, READER_PREFIX, READS_PREFIX
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.testing.rows import ROWS, change

TODAY = lambda: date(2026, 6, 1)  # noqa: E731


def entry(n: int, project: int = 7, lsn: int | None = None):
    return change("psa.timesheet_entry", {"id": n}, {"id": n, "resource_id": 5, "project_id": project, "work_date": date(2026, 2, 2),
                                                   "hours": "1", "billable": True, "status": "approved",
                                                   "approved_at": "2026-02-02T10:00:00+00:00"}, lsn or 1000 + n)


def second_quote(lsn: int):
    quote = ROWS[1].row
    return change("crm.quote", {"id": 2}, {**quote, "id": 2, "quote_number": "Q-2"}, lsn)


def run(processor: Processor, changes, batch: int = 10):
    results = []
    for i in range(0, len(changes), batch):
        result = processor.process(changes[i:i + batch])
        processor.commit(result)
        results.append(result)
    return results


def test_the_record_grows_with_the_engagement_not_its_rows():
    processor = Processor(SourceMirror(), today=TODAY)
    run(processor, list(ROWS))
    entries_before = len(processor.mirror.store.scan(READER_PREFIX))
    run(processor, [entry(100 + n) for n in range(500)])
    assert len(processor.mirror.store.scan(READER_PREFIX)) == entries_before  # 500 entries later: not one reader more
    assert 0 < entries_before < 30
    assert processor.mirror.readers.lookups("Q-1") == {
        key.split("|", 1)[1].rsplit("|", 1)[0].replace("%7C", "|") for key, _ in processor.mirror.store.scan(READER_PREFIX)}


def test_a_project_moved_to_another_contract_reaches_only_that_one():
    processor = Processor(SourceMirror(), today=TODAY)
    run(processor, list(ROWS) + [second_quote(40)], batch=100)
    moved = change("psa.project", {"id": 7}, {**ROWS[3].row, "crm_quote_number": "Q-2"}, 41)
    run(processor, [moved])
    (result,) = run(processor, [entry(200)])
    published = [e for e in result.canonical if e.ref == "psa.timesheet_entry:200"]
    assert published and all(e.key == e.contract == "Q-2" for e in published)
    assert processor.mirror.touched(processor.mirror.apply(entry(200, lsn=2000)))[0] == {"Q-2"}


def test_reference_data_is_published_under_its_own_ref():
    processor = Processor(SourceMirror(), today=TODAY)
    results = run(processor, list(ROWS), batch=100)
    keys = {e.event_type: e.key for r in results for e in r.canonical if e.ref is not None and e.contract is None}
    assert keys["resource"] == "psa.resource:5" and keys["client"] == "crm.account:1"
    owned = {e.event_type: e.key for r in results for e in r.canonical if e.ref is not None and e.contract is not None}
    assert owned["time_entry"] == owned["assignment"] == owned["project"] == "Q-1"


def test_a_mirror_written_before_reads_were_recorded_gets_them_once():
    processor = Processor(SourceMirror(), today=TODAY)
    run(processor, list(ROWS), batch=100)
    store = processor.mirror.store
    for key, _ in store.scan(READER_PREFIX) + store.scan(READS_PREFIX):
        store.delete(key)
    reopened = Processor(SourceMirror(store=store), processor.ledger, today=TODAY)
    assert reopened.mirror.touched(reopened.mirror.apply(entry(300)))[0] == set()  # reaches nothing: no record
    assert reopened.ensure_readers() == 1 and store.get(META_READERS)
    assert reopened.mirror.touched(reopened.mirror.apply(entry(301)))[0] == {"Q-1"}
    assert reopened.ensure_readers() == 0
