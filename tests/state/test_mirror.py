"""The mirror dates a row's standing by the source's commit time (``status_since``), and keeps its
indexes in its store."""
import json
from datetime import UTC, date, datetime, timedelta

from streams.capture.envelope import RowChange
from streams.state.mirror import MirrorCodec, SourceMirror
from streams.state.store import CachedStore, MemoryStore
from streams.testing import JsonTable

T = datetime(2026, 11, 1, 9, tzinfo=UTC)
QUOTE = {"id": 1, "quote_number": "Q-1", "opportunity_id": 1, "account_id": 1, "revision": 1, "status": "draft",
         "commercial_model": "milestone", "currency": "GBP", "start_date": date(2026, 11, 1),
         "end_date": date(2027, 1, 31), "payment_terms_days": 30, "discount_pct": "0", "total_amount": "0",
         "updated_at": T - timedelta(days=9)}
EXPENSE = {"id": 4, "resource_id": 5, "project_id": 7, "expense_date": date(2026, 11, 12), "category": "travel",
           "amount": "100", "currency": "GBP", "billable": True, "status": "submitted", "updated_at": T}


def change(table, row, lsn, at, op="u"):
    return RowChange("crm" if table == "quote" else "psa", "crm" if table == "quote" else "psa",
                     "quote" if table == "quote" else "expense_line", op, {"id": row["id"]}, row, lsn, at)


def test_a_quote_is_dated_by_the_commit_that_changed_its_status_not_by_later_edits():
    mirror = SourceMirror()
    mirror.apply(change("quote", QUOTE, 10, T - timedelta(days=9), op="c"))
    mirror.apply(change("quote", {**QUOTE, "status": "approved", "approved_at": T}, 11, T))
    mirror.apply(change("quote", {**QUOTE, "status": "cancelled", "approved_at": T}, 12, T + timedelta(days=3)))
    mirror.apply(change("quote", {**QUOTE, "status": "cancelled", "approved_at": T, "approved_by": "x"}, 13, T + timedelta(days=5)))
    quote = mirror.get("crm.quote", 1)
    assert quote.status_since == T + timedelta(days=3)
    assert quote.source_updated_at == T - timedelta(days=9)  # the CRM's updated_at, untouched by this CRM
    # the same change delivered again after a crash keeps the date
    mirror.apply(change("quote", {**QUOTE, "status": "cancelled", "approved_at": T, "approved_by": "x"}, 13, T + timedelta(days=5)))
    assert mirror.get("crm.quote", 1).status_since == T + timedelta(days=3)
    # and survives the durable table
    restored = SourceMirror()
    restored.load("crm.quote:1", mirror.persisted("crm.quote:1"))
    assert restored.get("crm.quote", 1) == quote


def test_a_snapshot_read_does_not_know_when_the_status_was_taken():
    mirror = SourceMirror()
    mirror.apply(change("quote", {**QUOTE, "status": "cancelled"}, 10, T, op="r"))
    assert mirror.get("crm.quote", 1).status_since is None


def test_an_expense_stays_dated_by_its_approval_when_it_is_reimbursed():
    mirror = SourceMirror()
    mirror.apply(change("expense", EXPENSE, 10, T, op="c"))
    mirror.apply(change("expense", {**EXPENSE, "status": "approved"}, 11, T + timedelta(days=1)))
    mirror.apply(change("expense", {**EXPENSE, "status": "reimbursed"}, 12, T + timedelta(days=8)))
    assert mirror.get("psa.expense_line", 4).status_since == T + timedelta(days=1)


def test_the_indexes_live_in_the_store_and_move_only_when_an_indexed_value_changes():
    backend = JsonTable()
    mirror = SourceMirror(store=CachedStore(backend, MirrorCodec(), size=2))
    mirror.apply(change("expense", EXPENSE, 10, T, op="c"))
    mirror.apply(change("expense", {**EXPENSE, "id": 6}, 11, T, op="c"))
    assert [e.id for e in mirror.find("psa.expense_line", "by_project", 7)] == [4, 6]
    writes = backend.writes
    mirror.apply(change("expense", {**EXPENSE, "status": "approved"}, 12, T))
    assert backend.writes == writes + 1  # the row; its project did not change, so no index entry did
    mirror.apply(change("expense", {**EXPENSE, "project_id": 8}, 13, T))
    assert [e.id for e in mirror.find("psa.expense_line", "by_project", 7)] == [6]
    assert [e.id for e in mirror.find("psa.expense_line", "by_project", 8)] == [4]
    mirror.apply(RowChange("psa", "psa", "expense_line", "d", {"id": 6}, None, 14, T))
    assert mirror.find("psa.expense_line", "by_project", 7) == []
    assert mirror.position("psa.expense_line:6") == 14  # a deleted row still guards against older changes
    assert mirror.apply(change("expense", {**EXPENSE, "id": 6}, 12, T)) is None


def test_a_table_written_without_index_entries_is_indexed_once_when_opened():
    written = SourceMirror(store=MemoryStore())
    written.apply(change("quote", QUOTE, 10, T, op="c"))
    written.apply(change("expense", EXPENSE, 11, T, op="c"))
    backend = JsonTable()
    for key, value in written.store.scan(""):
        if not key.startswith(("ix|", "meta|")):  # rows only, as a table of an earlier version holds them
            backend.put(key, MirrorCodec().encode(key, value))
    opened = SourceMirror(store=CachedStore(backend, MirrorCodec()))
    assert opened.find("psa.expense_line", "by_project", 7) == []
    assert opened.ensure_indexes() == 2
    assert [e.id for e in opened.find("psa.expense_line", "by_project", 7)] == [4]
    assert opened.find("crm.quote", "by_number", "Q-1") == [written.get("crm.quote", 1)]
    assert opened.ensure_indexes() == 0  # indexed already


def test_a_row_round_trips_through_the_tables_bytes_and_a_table_of_json_documents_is_still_read():
    mirror = SourceMirror()
    mirror.apply(change("quote", QUOTE, 10, T, op="c"))
    held = mirror.store.get("crm.quote:1")
    codec = MirrorCodec()
    assert codec.decode("crm.quote:1", codec.encode("crm.quote:1", held)) == held
    gone = held._replace(model=None)
    assert codec.decode("crm.quote:1", codec.encode("crm.quote:1", gone)) == gone
    legacy = held.persisted()  # what an earlier version's table keeps: a JSON document
    assert codec.decode("crm.quote:1", legacy) == held
    assert codec.decode("crm.quote:1", json.dumps(legacy).encode()) == held
    assert codec.decode("ix|crm.quote|by_number|Q-1|crm.quote:1", codec.encode("ix|crm.quote|by_number|Q-1|crm.quote:1", True)) is True
