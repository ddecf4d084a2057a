"""The ledger persisted row by row: restored exactly, and a change writes only what changed."""
import json
from dataclasses import replace
from datetime import date

from streams.canonical.models import BillingEvent
from streams.state.ledger import Ledger, LedgerCodec
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.testing.rows import ROWS, every_row


def run(rows, processor=None):
    processor = processor or Processor(SourceMirror(), today=lambda: date(2026, 6, 1))
    written = {}
    result = processor.process(list(rows))
    processor.commit(result)
    for key, row in result.ledger_writes.items():
        written[key] = json.loads(json.dumps(Ledger.persisted(row)))  # through JSON, as the table keeps it
    return processor, written, result


def test_a_ledger_restored_from_its_rows_is_the_ledger_that_wrote_them():
    processor, written, _ = run(every_row())
    restored = Ledger()
    for key, doc in written.items():
        restored.load(key, doc)
    assert restored.snapshot() == processor.ledger.snapshot()
    refs = [key.split("|", 2)[2] for key in written if "|linked|" in key]
    assert refs and restored.linked("Q-1", refs) == processor.ledger.linked("Q-1", refs) == set(refs)
    assert restored.outputs("Q-1") == processor.ledger.outputs("Q-1")


def test_one_more_time_entry_writes_its_own_rows_not_the_engagements():
    processor, first, _ = run(ROWS)
    entry = ROWS[6]
    more = [replace(entry, key={"id": 100 + i}, row={**entry.row, "id": 100 + i}, position=100 + i) for i in range(50)]
    processor, _, _ = run(more, processor)
    one = replace(entry, key={"id": 999}, row={**entry.row, "id": 999, "hours": "3"}, position=999)
    _, written, result = run([one], processor)
    kinds = sorted(key.split("|")[1] if "|" in key else key.split(":")[0] for key in written)
    # the new event, its cost, the link of the new entry; the account's financials do not move
    assert kinds == ["cost", "event", "linked"], written.keys()
    assert len(result.erp.events) == 1 and len(result.erp.costs) == 1


def test_a_row_that_leaves_the_outputs_is_deleted_from_the_ledger():
    ledger = Ledger()
    ledger.apply({"eng:Q-9": {"contract": None}, "eng:Q-9|linked|psa.project:1": True, "inv:I9": {"x": 1}})
    ledger.apply({"eng:Q-9|linked|psa.project:1": None, "inv:I9": None})
    assert ledger.linked("Q-9", ["psa.project:1"]) == set() and "inv:I9" not in ledger


def test_ledger_rows_round_trip_through_the_tables_bytes_and_json_documents_are_still_read():
    processor, written, _ = run(every_row())
    codec = LedgerCodec()
    for key, doc in written.items():
        row = processor.ledger.store.get(key)
        assert codec.decode(key, codec.encode(key, row)) == row
        assert codec.decode(key, doc) == row  # a JSON document, as an earlier version's table keeps it
        assert codec.decode(key, json.dumps(doc).encode()) == row
    assert any(isinstance(processor.ledger.store.get(k), BillingEvent) for k in written)
