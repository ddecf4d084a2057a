"""Scaling out, without I/O: a router shipping bundles and a worker deriving from its copies
write exactly what one worker writes, in any order of arrival, batching and redelivery."""
import dataclasses
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state.engagement_stage import EngagementStage
from streams.state.mirror import SourceMirror
from streams.state.processor import Processor
from streams.state.routing import ROWS_PER_PART, BundlePart, EngagementCopies, RouteBook, engagement_partition
from streams.testing.rows import ROWS, change, every_row, outcome
from tests.state.stages import TODAY, TwoStages, two_stage_outcome


def test_the_reference_order_gives_one_workers_rows():
    rows = list(every_row())
    assert two_stage_outcome(rows, 100) == outcome(rows, 100)


@settings(max_examples=80, deadline=None)
@given(st.permutations(list(range(11))), st.sampled_from([1, 2, 3, 100]))
def test_any_order_of_arrival_gives_one_workers_rows(order, batch_size):
    rows = every_row()
    assert two_stage_outcome([rows[i] for i in order], batch_size) == outcome(list(rows), 100)


def test_a_part_delivered_again_writes_nothing_and_keeps_the_newer_rows():
    stages = TwoStages()
    rows = list(every_row())
    first = stages.process(rows[:-1])
    stages.process(rows[-1:])  # the invoice line: the event is billed
    before = stages.snapshot()
    assert stages.derive(first) == {}  # the older parts again, as after a crash before the commit
    assert stages.snapshot() == before


def test_only_changed_rows_are_shipped_after_the_first_bundle():
    stages = TwoStages()
    stages.process(ROWS)
    entry = change("psa.timesheet_entry", {"id": 9}, {**ROWS[6].row, "hours": "6"}, 40)
    (sent,) = stages.process([entry])
    assert list(sent[1].rows) == ["psa.timesheet_entry:9"] and not sent[1].reset


def test_a_project_moved_to_another_quote_leaves_the_first_engagement():
    q2 = change("crm.quote", {"id": 2}, {**ROWS[1].row, "id": 2, "quote_number": "Q-2"}, 50)
    moved = change("psa.project", {"id": 7}, {**ROWS[3].row, "crm_quote_number": "Q-2"}, 51)
    history = [*ROWS, q2, moved]
    stages, one = TwoStages(), Processor(SourceMirror(), today=TODAY)
    for batch in (history[:-1], history[-1:]):
        one.commit(one.process(batch))
    stages.process(history[:-1])
    sent = stages.process(history[-1:])
    left = {ref for _, part in sent if part.contract == "Q-1" for ref, row in part.rows.items() if row is None}
    assert {"psa.project:7", "psa.timesheet_entry:9", "psa.assignment:3"} <= left
    assert stages.snapshot() == one.ledger.snapshot()
    assert stages.stage.copies.mirror("Q-1").get("psa.project", 7) is None


def test_a_large_engagement_is_cut_into_parts_and_derived_once_whole():
    entries = [change("psa.timesheet_entry", {"id": 100 + i}, {**ROWS[6].row, "id": 100 + i}, 100 + i)
               for i in range(ROWS_PER_PART + 50)]
    router = Processor(SourceMirror(), today=TODAY, routes=RouteBook())
    router.process(entries)  # the entries before their engagement: nothing to route yet
    result = router.process(ROWS)
    parts = [p for p in result.bundles if p.contract == "Q-1"]
    assert [(p.reset, p.last) for p in parts] == [(True, False), (False, True)]
    stage = EngagementStage(today=TODAY)
    half = stage.process([(0, parts[0])])
    assert half.ledger_writes == {}  # half a bundle is never derived
    whole = stage.process([(1, parts[1])])
    stage.commit(whole)
    assert len(stage.ledger.outputs("Q-1").events) == len(entries) + 1
    assert whole.erp.events


def test_a_whole_bundle_drops_rows_the_copy_holds_that_left_meanwhile():
    copies = EngagementCopies()
    doc = {"t": "psa.project", "pos": 1, "row": None}
    copies.apply(BundlePart("Q-1", {"psa.project:7": {**doc, "row": ROWS[3].row}}, reset=True), 0)
    copies.apply(BundlePart("Q-1", {}, reset=True), 1)
    assert copies.mirror("Q-1").get("psa.project", 7) is None


def test_partitions_are_stable_and_spread():
    assert engagement_partition("Q-1", 8) == engagement_partition("Q-1", 8)
    assert len({engagement_partition(f"Q-{n}", 8) for n in range(100)}) == 8


SECOND = [  # a second engagement of the same client, staffed with the same person
    change("crm.quote", {"id": 2}, {**ROWS[1].row, "id": 2, "quote_number": "Q-2"}, 60),
    change("crm.quote_line", {"id": 2}, {**ROWS[2].row, "id": 2, "quote_id": 2}, 61),
    change("psa.project", {"id": 8}, {**ROWS[3].row, "id": 8, "project_code": "P8", "crm_quote_number": "Q-2"}, 62),
    change("psa.assignment", {"id": 4}, {**ROWS[5].row, "id": 4, "project_id": 8}, 63),
    change("psa.timesheet_entry", {"id": 10}, {**ROWS[6].row, "id": 10, "project_id": 8}, 64),
    change("psa.resource", {"id": 5}, {**ROWS[4].row, "cost_rate": "55"}, 65),  # a rate change both read
]


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(17))), st.sampled_from([1, 4, 100]))
def test_two_engagements_sharing_rows_give_one_workers_rows_in_any_order(order, batch_size):
    """A rate changed after a cost was posted reverses it (RULES.md), so what is written
    depends on what arrived when: compare with one worker given the same arrivals."""
    rows = [*every_row(), *SECOND]
    arrivals = [rows[i] for i in order]
    assert two_stage_outcome(arrivals, batch_size) == outcome(arrivals, batch_size)


def test_scaling_out_a_running_deployment_hands_each_engagement_over_with_what_was_written():
    history = list(every_row())  # the time event is billed on invoice I1
    changed = [change("psa.timesheet_entry", {"id": 9}, {**ROWS[6].row, "hours": "6"}, 40)]  # a billed entry edited
    reference = Processor(SourceMirror(), today=TODAY)
    for batch in (history, changed):
        reference.commit(reference.process(batch))
    one = Processor(SourceMirror(), today=TODAY)
    one.commit(one.process(history))
    # the same deployment restarted scaled out: the router keeps the single worker's mirror and ledger
    router = Processor(one.mirror, one.ledger, today=TODAY, routes=RouteBook())
    result = router.process(changed)
    router.commit(result)
    assert any(part.ledger for part in result.bundles)
    stage = EngagementStage(today=TODAY)
    derived = stage.process(list(enumerate(result.bundles)))
    stage.commit(derived)
    assert {**router.ledger.snapshot(), **stage.ledger.snapshot()} == reference.ledger.snapshot()
    assert "eng:Q-1" not in router.ledger.snapshot()  # handed over, not kept twice
    statuses = sorted((e.billing_event_id.endswith(":REV"), e.status) for e in derived.erp.events)
    assert (True, "ready") in statuses  # the billed event is reversed (a :REV), not billed twice


def test_a_backfill_read_that_changes_a_row_reaches_the_deriving_side():
    """A time entry changed while its table was not captured, then read by a backfill (a read
    with no LSN of its own, ``current``): the router ships it, and both stages end as one worker."""
    entry = next(c for c in ROWS if c.table_id == "psa.timesheet_entry")
    read = dataclasses.replace(entry, op="r", row={**entry.row, "hours": "6"}, position=999, current=True)
    order = [*ROWS, read]
    stages = TwoStages()
    stages.process(list(ROWS))
    shipped = stages.process([read])
    assert any("psa.timesheet_entry:9" in part.rows for _, part in shipped)
    one_worker = outcome(order, len(ROWS))  # the same two batches
    assert stages.snapshot() == one_worker
    (event,) = [e for e in one_worker["eng:Q-1"]["events"].values() if e["status"] != "reversed"]
    assert Decimal(event["quantity"]) == 6
