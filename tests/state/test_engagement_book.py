"""The incremental path writes exactly what full derivation writes.

Two processors read the same source changes in the same batches: one derives each touched
engagement from its book (only the rows a batch touched), reading its mirror and ledger on demand
from JSON documents through caches of five rows (as the worker does from RocksDB); the other in
full every time, from the heap
(``Books(size=0)`` keeps no book). Their ERP rows, canonical events and ledgers must be equal
after every batch, for any sequence and batching: reversals, ``:REV`` events, releases of holds,
running totals, costs restated."""
from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.capture.envelope import RowChange
from streams.state.engagement_book import Books, RunningTotal
from streams.state.ledger import Ledger, LedgerCodec
from streams.state.mirror import MirrorCodec, SourceMirror
from streams.state.processor import Processor
from streams.state.store import CachedStore
from streams.testing import JsonTable
from tests.rules.builders import T0
from tests.state.source_rows import BASE, START, line_row, quote_row, resource_row
from tests.state.stages import TwoStages

HOUR = st.integers(0, 200)
TIME = st.tuples(st.just("time"), st.integers(1, 8), st.sampled_from(["8", "4", "2.5", "30"]),
                 st.sampled_from(["approved", "approved", "approved", "submitted"]), HOUR, st.sampled_from([5, 5, 6]),
                 st.sampled_from([date(2026, 2, 2), date(2026, 3, 3), date(2026, 3, 3), date(2027, 1, 1)]),
                 st.sampled_from([True, True, False]))
EXPENSE = st.tuples(st.just("expense"), st.integers(1, 4), st.sampled_from(["100", "60", "20"]), st.sampled_from(["GBP", "GBP", "USD"]),
                    st.sampled_from(["approved", "reimbursed", "submitted"]), HOUR)
op = st.one_of(
    TIME, TIME, TIME, TIME, TIME,
    st.tuples(st.just("time_deleted"), st.integers(1, 8)),
    EXPENSE, EXPENSE,
    st.tuples(st.just("expense_deleted"), st.integers(1, 4)),
    st.tuples(st.just("assignment"), st.integers(1, 3), st.sampled_from([5, 6]), st.sampled_from(["CONS", "ARCH"]),
              st.sampled_from([(date(2026, 1, 1), date(2026, 6, 30)), (date(2026, 3, 1), date(2026, 6, 30))])),
    st.tuples(st.just("assignment_deleted"), st.integers(1, 3)),
    st.tuples(st.just("resource"), st.sampled_from([5, 6]), st.sampled_from(["CONS", "ARCH"]), st.sampled_from(["50", "70"])),
    st.tuples(st.just("change_order"), HOUR, st.sampled_from(["120", "90"])),
    st.tuples(st.just("cancel"), HOUR),
    st.tuples(st.just("tax"), st.booleans()),
    st.tuples(st.just("bill"), st.integers(0, 20), st.sampled_from(["IS", "VD"])),
    st.tuples(st.just("milestone"), st.booleans(), HOUR),
)


class Feed:
    """Source changes with increasing LSNs."""

    def __init__(self):
        self.lsn = 100

    def change(self, table_id, key, row, op="c", at=None):
        self.lsn += 1
        source, table = table_id.split(".")
        return RowChange(source, source, table, "d" if row is None else op, key, row, self.lsn, at)


def changes_of(o, feed: Feed, reference: Processor) -> list[RowChange]:
    kind = o[0]
    at = lambda h: START + timedelta(hours=h)  # noqa: E731
    if kind == "time":
        _, tid, hours, status, h, rid, day, billable = o
        return [feed.change("psa.timesheet_entry", {"id": tid}, {
            "id": tid, "resource_id": rid, "project_id": 7, "work_date": day, "hours": hours, "billable": billable,
            "status": status, "approved_at": at(h) if status == "approved" else None}, "u")]
    if kind == "time_deleted":
        return [feed.change("psa.timesheet_entry", {"id": o[1]}, None)]
    if kind == "expense":
        _, xid, amount, currency, status, h = o
        return [feed.change("psa.expense_line", {"id": xid}, {
            "id": xid, "resource_id": 5, "project_id": 7, "expense_date": date(2026, 2, 2), "category": "travel",
            "amount": amount, "currency": currency, "billable": True, "status": status, "updated_at": at(h)}, "u", at(h))]
    if kind == "expense_deleted":
        return [feed.change("psa.expense_line", {"id": o[1]}, None)]
    if kind == "assignment":
        _, aid, rid, role, (start, end) = o
        return [feed.change("psa.assignment", {"id": aid}, {"id": aid, "project_id": 7, "resource_id": rid, "role_code": role,
                                                            "planned_hours": "10", "start_date": start, "end_date": end}, "u")]
    if kind == "assignment_deleted":
        return [feed.change("psa.assignment", {"id": o[1]}, None)]
    if kind == "resource":
        _, rid, role, cost = o
        return [feed.change("psa.resource", {"id": rid}, resource_row(rid, role, cost), "u")]
    if kind == "change_order":
        _, h, price = o
        return [feed.change("crm.quote_line", {"id": 21}, line_row(21, 2, 1, "role_rate", qty="10", price=price, role="CONS")),
                feed.change("crm.quote_line", {"id": 22}, line_row(22, 2, 2, "role_rate", qty="4", price="150", role="ARCH")),
                feed.change("crm.quote_line", {"id": 23}, line_row(23, 2, 3, "expense_allowance", price="150")),
                feed.change("crm.quote", {"id": 1}, quote_row(status="superseded"), "u"),
                feed.change("crm.quote", {"id": 2}, quote_row(2, 2, 1, approved=at(h)), "u")]
    if kind == "cancel":
        current = reference.mirror.engagement_quotes("Q-1")[-1]
        row = quote_row(current.id, current.revision, current.amends_quote_id, "cancelled", current.approved_at)
        return [feed.change("crm.quote", {"id": current.id}, {**row, "updated_at": current.approved_at + timedelta(hours=o[1] + 1)}, "u")]
    if kind == "tax":
        key = {"tax_cd": "STD", "country_cd": "GB", "valid_from": 0}
        row = {"tax_cd": "STD", "country_cd": "GB", "rate_pct": "20", "valid_from": date(1970, 1, 1)} if o[1] else None
        return [feed.change("finance.gl_tax_rate", key, row, "u")]
    if kind in ("bill", "bill_reversal"):
        _, k, status = o
        outputs = reference.ledger.outputs("Q-1")
        ids = sorted(outputs.events) if outputs else []
        if kind == "bill_reversal":
            ids = [i for i in ids if i.endswith(":REV")]
        if not ids:
            return []
        src = ids[k % len(ids)]
        inv = "INV1" if kind == "bill" else "INV2"
        return [
            feed.change("finance.ar_invoice_hdr", {"inv_no": inv}, {
                "inv_no": inv, "cust_no": "C1", "contract_ref": "Q-1", "inv_dt": date(2026, 3, 1), "due_dt": date(2026, 3, 31),
                "curr_cd": "GBP", "net_amt": "1", "tax_amt": "0", "gross_amt": "1", "status_cd": status, "entity_cd": "UK01",
                "last_upd_ts": datetime(2026, 3, 1)}, "u"),
            feed.change("finance.ar_invoice_line", {"inv_no": inv, "line_no": k}, {
                "inv_no": inv, "line_no": k, "src_type": "TE", "src_ref": src, "qty": "1", "unit_prc": "1", "net_amt": "1",
                "tax_cd": "STD"}, "u"),
        ]
    if kind == "milestone":
        _, accepted, h = o
        return [feed.change("psa.milestone", {"id": 3}, {"id": 3, "project_id": 7, "milestone_code": "M1", "name": "M1",
                                                         "status": "accepted" if accepted else "planned",
                                                         "accepted_at": at(h) if accepted else None}, "u")]
    raise AssertionError(kind)


def outcome(result, processor):
    erp = {part: sorted(m.model_dump_json() for m in getattr(result.erp, part))
           for part in ("contracts", "schedule", "events", "costs")}
    canonical = sorted((e.event_type, e.key, e.ref or "", e.model.model_dump_json() if e.model else "") for e in result.canonical)
    return erp, canonical, processor.ledger.snapshot(), [k for k, _ in processor.ledger.store.scan("eng:") if "|linked|" in k]


def batches(ops, batch_sizes, feed: Feed, reference: Processor):
    """The changes of ``ops`` in batches of at least the sizes given; with the ops so far."""
    pending: list[RowChange] = []
    sizes = iter(batch_sizes)
    size = next(sizes)
    for i, o in enumerate(ops):
        pending += changes_of(o, feed, reference)
        if len(pending) >= size or i == len(ops) - 1:
            yield pending, ops[:i + 1]
            pending, size = [], next(sizes)


def on_demand() -> Processor:
    """A processor whose mirror and ledger read every row from JSON documents through caches of a
    few rows, as the worker's do from RocksDB."""
    return Processor(SourceMirror(store=CachedStore(JsonTable(), MirrorCodec(), size=5)),
                     Ledger(CachedStore(JsonTable(), LedgerCodec(), size=5)))


def run_both(ops, batch_sizes):
    """Feed ``ops`` to an incremental and a full processor in the same batches; compare after each."""
    feed = Feed()
    incremental, full = on_demand(), Processor(SourceMirror(), books=Books(size=0))
    base = [feed.change(t, k, r) for t, k, r in BASE]
    for processor in (incremental, full):
        processor.commit(processor.process(base))
    for batch, so_far in batches(ops, batch_sizes, feed, full):
        results = [p.process(batch) for p in (incremental, full)]
        for p, r in zip((incremental, full), results, strict=False):
            p.commit(r)
        assert outcome(results[0], incremental) == outcome(results[1], full), so_far


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=8, max_size=40), st.lists(st.integers(1, 6), min_size=41, max_size=41))
def test_the_incremental_path_writes_what_full_derivation_writes(ops, batch_sizes):
    run_both(ops, batch_sizes)


# the running totals: entries and expenses that pass the budget and the cap, changed and removed
busy = st.one_of(
    st.tuples(st.just("time"), st.integers(1, 8), st.sampled_from(["8", "4", "2.5"]), st.sampled_from(["approved", "submitted"]),
              HOUR, st.just(5), st.just(date(2026, 2, 2)), st.just(True)),
    st.tuples(st.just("time_deleted"), st.integers(1, 8)),
    st.tuples(st.just("expense"), st.integers(1, 4), st.sampled_from(["100", "60", "20"]), st.just("GBP"),
              st.sampled_from(["approved", "submitted"]), HOUR),
    st.tuples(st.just("expense_deleted"), st.integers(1, 4)),
    st.tuples(st.just("tax"), st.booleans()),
    st.tuples(st.just("bill"), st.integers(0, 20), st.sampled_from(["IS", "VD"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(busy, min_size=8, max_size=40), st.lists(st.integers(1, 4), min_size=41, max_size=41))
def test_the_running_totals_stay_what_full_derivation_makes_them(ops, batch_sizes):
    run_both(ops, batch_sizes)


def test_an_invoiced_reversal_is_billed_with_its_event():
    entry = ("time", 1, "8", "approved", 1, 5, date(2026, 2, 2), True)
    run_both([entry, ("bill", 0, "IS"), ("time_deleted", 1), ("bill_reversal", 1, "IS")], [1] * 5)


def test_a_batch_that_was_not_committed_leaves_no_book_ahead_of_the_ledger():
    feed = Feed()
    processor = Processor(SourceMirror())
    processor.commit(processor.process([feed.change(t, k, r) for t, k, r in BASE]))
    entry = {"id": 1, "resource_id": 5, "project_id": 7, "work_date": date(2026, 2, 2), "hours": "8", "billable": True,
             "status": "approved", "approved_at": T0}
    change = feed.change("psa.timesheet_entry", {"id": 1}, entry)
    processor.process([change])  # the sinks failed: never committed
    again = processor.process([change])  # applied again, as the pipeline does
    assert [e.source_ref for e in again.erp.events] == ["psa.timesheet_entry:1"]


def test_a_running_total_recomputes_from_the_change_and_stops_where_it_is_back():
    from decimal import Decimal as D

    from streams.rules.engagement import Candidate

    def cand(i, amount):
        return Candidate("time", i, T0.date(), None, D("1"), f"E{i}", (T0, i), D(amount), D(amount), "STD", None, True)

    total = RunningTotal(D("300"), "over_budget", [cand(i, "100") for i in range(1, 6)])
    assert [total.holds[f"E{i}"] for i in range(1, 6)] == [None, None, None, "over_budget", "over_budget"]
    assert total.change([cand(2, "100")], []) == {"E4"}  # room again: the next one takes it
    assert [total.holds[f"E{i}"] for i in (1, 3, 4, 5)] == [None, None, None, "over_budget"]


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=8, max_size=30), st.lists(st.integers(1, 6), min_size=31, max_size=31))
def test_scaled_out_the_router_and_the_deriving_side_write_what_one_worker_writes(ops, batch_sizes):
    """The router ships only the rows a batch changed (and the engagement-wide ones), the deriving
    side derives from its book: the same ledger as one worker deriving in full."""
    feed = Feed()
    stages, one = TwoStages(), Processor(SourceMirror(), books=Books(size=0), today=lambda: date(2026, 6, 1))
    base = [feed.change(t, k, r) for t, k, r in BASE]
    stages.process(base)
    one.commit(one.process(base))
    for batch, so_far in batches(ops, batch_sizes, feed, one):
        stages.process(batch)
        one.commit(one.process(batch))
        assert stages.snapshot() == one.ledger.snapshot(), so_far
