"""The join graph has one description, the code that reads: ``streams/state/views.py`` (and the
incremental path) read the mirror forward, and ``SourceMirror.touched`` finds the engagements a
changed row affects from what those reads asked for (``streams.state.readers``). Checked here
against the forward side, recorded afresh: for any change, after the processor has derived what
the changes before it touched, every engagement whose view reads the row, or looks for it (an
index value it has, a table it is in, a ref that was missing), before or after the change, is
among the engagements the change touches. The only rule written by hand, the root, is checked
with the rest: a quote names its own contract."""
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.capture.envelope import RowChange
from streams.state.keys import IndexKey
from streams.state.mirror import INDEXES, Applied, SourceMirror
from streams.state.processor import Processor
from streams.state.views import engagement_view
from tests.state.source_rows import BASE, line_row, quote_row, resource_row

PROJECTS, PEOPLE, NUMBERS = st.sampled_from([7, 8]), st.sampled_from([5, 6]), st.sampled_from(["Q-1", "Q-2", "Q-1-R2", "Q-9"])
ops = st.one_of(
    st.tuples(st.just("time"), st.integers(1, 5), PROJECTS, PEOPLE, st.sampled_from(["approved", "submitted"])),
    st.tuples(st.just("time_deleted"), st.integers(1, 5)),
    st.tuples(st.just("expense"), st.integers(1, 3), PROJECTS),
    st.tuples(st.just("project"), PROJECTS, NUMBERS),
    st.tuples(st.just("project_deleted"), PROJECTS),
    st.tuples(st.just("assignment"), st.integers(1, 3), PROJECTS, PEOPLE),
    st.tuples(st.just("resource"), PEOPLE, st.sampled_from(["50", "70"])),
    st.tuples(st.just("quote"), st.sampled_from([(2, "Q-2", None, 1), (3, "Q-1-R2", 1, 2)]),
              st.sampled_from(["draft", "approved", "cancelled"])),
    st.tuples(st.just("line"), st.integers(20, 22), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("account"), st.sampled_from(["GB", "FR"])),
    st.tuples(st.just("milestone"), st.integers(1, 2), PROJECTS),
    st.tuples(st.just("invoice"), st.sampled_from(["I1", "I2"]), st.sampled_from(["Q-1", "Q-2", None])),
    st.tuples(st.just("invoice_line"), st.sampled_from(["I1", "I2"]), st.integers(1, 2),
              st.sampled_from(["MS:Q-1:M1", "MS:Q-2:M1", "TE:Q-2:x:y", None])),
    st.tuples(st.just("customer"), st.sampled_from(["ACC-1", "ACC-2", None])),
    st.tuples(st.just("tax"), st.sampled_from(["20", "10"])),
    st.tuples(st.just("period"), st.sampled_from(["O", "C"])),
)


class Feed:
    def __init__(self):
        self.lsn = 1000

    def __call__(self, table_id, key, row):
        self.lsn += 1
        source, table = table_id.split(".")
        return RowChange(source, source, table, "d" if row is None else "u", key, row, self.lsn, None)


def change_of(o, feed: Feed) -> RowChange:
    kind = o[0]
    if kind == "time":
        _, i, pid, rid, status = o
        return feed("psa.timesheet_entry", {"id": i}, {"id": i, "resource_id": rid, "project_id": pid, "work_date": date(2026, 2, 2),
                                                      "hours": "8", "billable": True, "status": status,
                                                      "approved_at": "2026-02-02T10:00:00+00:00" if status == "approved" else None})
    if kind == "time_deleted":
        return feed("psa.timesheet_entry", {"id": o[1]}, None)
    if kind == "expense":
        _, i, pid = o
        return feed("psa.expense_line", {"id": i}, {"id": i, "resource_id": 5, "project_id": pid, "expense_date": date(2026, 2, 3),
                                                   "category": "travel", "amount": "50", "currency": "GBP", "billable": True,
                                                   "status": "approved"})
    if kind == "project":
        _, pid, number = o
        return feed("psa.project", {"id": pid}, {"id": pid, "project_code": f"P{pid}", "name": "p", "crm_quote_number": number,
                                                 "status": "active", "created_by": "user"})
    if kind == "project_deleted":
        return feed("psa.project", {"id": o[1]}, None)
    if kind == "assignment":
        _, i, pid, rid = o
        return feed("psa.assignment", {"id": i}, {"id": i, "project_id": pid, "resource_id": rid, "role_code": "CONS",
                                                  "planned_hours": "10", "start_date": date(2026, 1, 1), "end_date": date(2026, 6, 30)})
    if kind == "resource":
        return feed("psa.resource", {"id": o[1]}, resource_row(o[1], cost=o[2]))
    if kind == "quote":
        _, (qid, number, amends, revision), status = o
        return feed("crm.quote", {"id": qid}, quote_row(qid, revision, amends, status, number=number))
    if kind == "line":
        _, lid, qid = o
        return feed("crm.quote_line", {"id": lid}, line_row(lid, qid, lid, "role_rate", qty="5", price="100", role="CONS"))
    if kind == "account":
        return feed("crm.account", {"id": 1}, {"id": 1, "account_number": "ACC-1", "name": "Acme", "billing_country": o[1],
                                               "currency": "GBP", "legal_entity": "UK01"})
    if kind == "milestone":
        _, i, pid = o
        return feed("psa.milestone", {"id": i}, {"id": i, "project_id": pid, "milestone_code": "M1", "name": "M1", "status": "planned"})
    if kind == "invoice":
        _, inv, ref = o
        return feed("finance.ar_invoice_hdr", {"inv_no": inv}, {
            "inv_no": inv, "cust_no": "C1", "contract_ref": ref, "inv_dt": date(2026, 3, 1), "due_dt": date(2026, 3, 31),
            "curr_cd": "GBP", "net_amt": "100", "tax_amt": "20", "gross_amt": "120", "status_cd": "IS", "entity_cd": "UK01",
            "last_upd_ts": "2026-03-01T00:00:00"})
    if kind == "invoice_line":
        _, inv, no, src = o
        return feed("finance.ar_invoice_line", {"inv_no": inv, "line_no": no}, {
            "inv_no": inv, "line_no": no, "src_type": "MS", "src_ref": src, "qty": "1", "unit_prc": "100", "net_amt": "100",
            "tax_cd": "STD"})
    if kind == "customer":
        return feed("finance.ar_customer", {"cust_no": "C1"}, {
            "cust_no": "C1", "cust_name": "Acme", "crm_account_no": o[1], "country_cd": "GB", "curr_cd": "GBP", "entity_cd": "UK01",
            "status_cd": "A", "last_upd_ts": "2026-03-01T00:00:00"})
    if kind == "tax":
        return feed("finance.gl_tax_rate", {"tax_cd": "STD", "country_cd": "GB", "valid_from": 0},
                    {"tax_cd": "STD", "country_cd": "GB", "rate_pct": o[1], "valid_from": date(1970, 1, 1)})
    if kind == "period":
        return feed("finance.gl_period", {"period_cd": "202602"}, {
            "period_cd": "202602", "start_dt": date(2026, 2, 1), "end_dt": date(2026, 2, 28), "status_cd": o[1],
            "last_upd_ts": "2026-02-01T00:00:00"})
    raise AssertionError(kind)


def reads_of(mirror: SourceMirror, contracts: set[str]) -> dict[str, tuple[set[str], set[str]]]:
    found = {}
    for contract in contracts:
        lookups: set[str] = set()
        with mirror.recording(lookups) as reads:
            engagement_view(mirror, contract)
        found[contract] = (reads, lookups)
    return found


def depends(reads_and_lookups: tuple[set[str], set[str]] | None, applied: Applied) -> bool:
    if reads_and_lookups is None:
        return False
    reads, lookups = reads_and_lookups
    if applied.ref in reads or applied.ref in lookups:
        return True
    if any(applied.ref.startswith(p) for p in lookups if p.endswith(":")):  # a table read whole
        return True
    for model in (applied.before, applied.after):
        for name, fn in INDEXES.get(applied.table_id, ()) if model is not None else ():
            value = fn(model)
            if value is not None and IndexKey.prefix(applied.table_id, name, value) in lookups:
                return True
    return False


class Touches:
    """The processor's mirror, with each change it applied and what the change touched."""

    def __init__(self, mirror: SourceMirror):
        self.seen: list[tuple[Applied, set[str]]] = []
        self._touched = mirror.touched
        mirror.touched = self

    def __call__(self, applied: Applied):
        found = self._touched(applied)
        self.seen.append((applied, found[0]))
        return found


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, min_size=1, max_size=30))
def test_a_change_touches_every_engagement_whose_rules_read_it_or_looked_for_it(sequence):
    mirror, feed = SourceMirror(), Feed()
    processor = Processor(mirror, today=lambda: date(2026, 6, 1))
    processor.commit(processor.process([feed(table_id, key, row) for table_id, key, row in BASE]))
    touches = Touches(mirror)
    for o in sequence:
        existing = mirror.contracts()  # an engagement with no quote (yet, or any more) derives nothing
        before = reads_of(mirror, existing)
        touches.seen.clear()
        processor.commit(processor.process([change_of(o, feed)]))  # applies it, derives what it touched
        after = reads_of(mirror, mirror.contracts())
        for applied, touched in touches.seen:
            for contract in existing | mirror.contracts():
                if depends(before.get(contract), applied) or depends(after.get(contract), applied):
                    assert contract in touched, (o, contract, touched)
