"""A cancelled contract bills nothing new (docs/choices.md, "Contract and schedule")."""
from datetime import timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules.contract_life import cancellations, cancelled_at
from streams.rules.engagement import derive
from tests.rules.builders import T0, assignment, expense, invoice, invoice_line, line, milestone, period, quote, resource, time_entry, view
from tests.rules.contract_life import AFTER, BEFORE, CANCEL, MILESTONES, TERM, engagement


def cancelled(model="milestone", at=CANCEL, **kw):
    return quote(model=model, status="cancelled", cancelled=at, **{**TERM, **kw})


def tm(quotes, entries=(), expenses=(), extra_lines=()):
    lines = [line(1, "role_rate", qty="100", price="100", role="CONS"), *extra_lines]
    return engagement(quotes, lines, assignments=[assignment()], resources={5: resource()},
                      time_entries=list(entries), expenses=list(expenses))


def statuses(out):
    return {k: (e.status, e.hold_reason) for k, e in out.events.items()}


# --- what the cancellation does --------------------------------------------------------------

def test_the_contract_is_cancelled_and_its_planned_items_with_it():
    out = derive(engagement([cancelled()], milestones=[milestone("M1", accepted=BEFORE), milestone("M2", status="planned")]))
    assert out.contract.status == "cancelled"
    assert {k: i.status for k, i in out.schedule.items()} == {"MS:M1": "eligible", "MS:M2": "cancelled"}
    assert out.contract.contract_value == D("1000.00")  # the cancelled item no longer counts
    assert statuses(out) == {"MS:Q-1:M1": ("ready", None)}  # accepted before: owed, stays ready


def test_a_milestone_accepted_after_the_cancellation_is_held_never_ready():
    out = derive(engagement([cancelled()], milestones=[milestone("M1", accepted=BEFORE), milestone("M2", accepted=AFTER)]))
    assert statuses(out) == {"MS:Q-1:M1": ("ready", None), "MS:Q-1:M2": ("on_hold", "contract_cancelled")}
    assert out.schedule["MS:M2"].status == "cancelled"
    held = out.events["MS:Q-1:M2"]
    assert held.amount == D("2000.00") and held.tax_amount is not None  # priced, so finance sees what it holds


def test_the_same_milestone_accepted_while_the_contract_was_active_was_ready_and_becomes_held_once_the_cancel_is_known():
    """The source timestamps decide, not the order: the acceptance after the cancellation is held
    even when it reached the sync first (same id: no reversal)."""
    active = derive(engagement([quote(model="milestone", **TERM)], milestones=[milestone("M2", accepted=AFTER)]))
    assert statuses(active) == {"MS:Q-1:M2": ("ready", None)}
    out = derive(engagement([cancelled()], milestones=[milestone("M2", accepted=AFTER)]), active)
    assert statuses(out) == {"MS:Q-1:M2": ("on_hold", "contract_cancelled")}


def test_installments_of_periods_opened_before_stay_and_after_are_held_also_once_closed():
    q = cancelled(model="fixed_fee")
    lines = [line(1, "fixed_fee", price="3000")]
    opened = {"202611": period("202611", opened=BEFORE), "202612": period("202612", opened=AFTER),
              "202701": period("202701", status="F")}
    out = derive(engagement([q], lines, periods=opened))
    assert {k: i.status for k, i in out.schedule.items()} == {
        "FF:1:202611": "eligible", "FF:1:202612": "cancelled", "FF:1:202701": "cancelled"}
    assert statuses(out) == {"FF:Q-1:1:202611": ("ready", None), "FF:Q-1:1:202612": ("on_hold", "contract_cancelled")}
    # finance closes December: the time it was opened is gone, its start (after the cancellation) stands for it
    closed = {**opened, "202612": period("202612", status="C", opened=AFTER + timedelta(days=40))}
    again = derive(engagement([q], lines, periods=closed), out)
    assert statuses(again) == statuses(out)


def test_time_approved_after_the_cancellation_is_held_and_before_stays_ready_costs_are_posted_for_both():
    entries = [time_entry(1, approved=BEFORE), time_entry(2, approved=AFTER), time_entry(3, hours="30", approved=AFTER)]
    out = derive(tm([cancelled(model="time_and_materials")], entries))
    by_entry = {e.source_ref: (e.status, e.hold_reason) for e in out.events.values()}
    assert by_entry == {"psa.timesheet_entry:1": ("ready", None),
                        "psa.timesheet_entry:2": ("on_hold", "contract_cancelled"),
                        "psa.timesheet_entry:3": ("on_hold", "contract_cancelled")}  # first in the hold order
    assert sorted(c.status for c in out.costs.values()) == ["posted"] * 3  # delivery cost was incurred


def test_expenses_approved_after_the_cancellation_are_held():
    allowance = line(2, "expense_allowance", price="500")
    out = derive(tm([cancelled(model="time_and_materials")], expenses=[expense(1, updated=BEFORE), expense(2, updated=AFTER)],
                    extra_lines=[allowance]))
    by_line = {e.source_ref: (e.status, e.hold_reason) for e in out.events.values()}
    assert by_line == {"psa.expense_line:1": ("ready", None), "psa.expense_line:2": ("on_hold", "contract_cancelled")}


def test_billed_before_the_cancellation_stays_billed():
    billed = [(invoice_line("INV1", 1, "MS:Q-1:M1"), invoice("INV1"))]
    out = derive(engagement([cancelled()], milestones=[milestone("M1", accepted=BEFORE)], invoice_lines=billed))
    assert out.events["MS:Q-1:M1"].status == "billed" and out.schedule["MS:M1"].status == "billed"


def test_a_cancelled_contract_provisions_no_project():
    out = derive(view([cancelled()], MILESTONES))
    assert out.contract.status == "cancelled" and out.provision is None


# --- what re-activates it ----------------------------------------------------------------------

def change_order(approved, lines_qid=2, model="milestone"):
    return quote(qid=lines_qid, model=model, revision=2, amends=1, approved=approved, **TERM)


def test_a_change_order_after_the_cancellation_reactivates_the_contract_and_releases_the_holds():
    ms = [milestone("M1", accepted=BEFORE), milestone("M2", accepted=AFTER)]
    held = derive(engagement([cancelled()], milestones=ms))
    co_lines = [*MILESTONES, line(1, "milestone", price="1500", code="M1", qid=2), line(2, "milestone", price="2500", code="M2", qid=2)]
    out = derive(engagement([cancelled(), change_order(AFTER + timedelta(days=1))], co_lines, milestones=ms), held)
    assert out.contract.status == "active" and out.contract.revision == 2
    assert {k: i.status for k, i in out.schedule.items()} == {"MS:M1": "eligible", "MS:M2": "eligible"}
    assert statuses(out) == {"MS:Q-1:M1": ("ready", None), "MS:Q-1:M2": ("ready", None)}  # the same ids
    assert out.schedule["MS:M1"].amount == D("1000.00")  # eligible before the change order: keeps its amount
    assert out.schedule["MS:M2"].amount == D("2500.00")  # accepted while cancelled: the change order prices it


def test_a_change_order_without_the_held_milestone_cancels_it_and_reverses_its_hold():
    ms = [milestone("M2", accepted=AFTER)]
    held = derive(engagement([cancelled()], milestones=ms))
    co_lines = [*MILESTONES, line(1, "milestone", price="1500", code="M3", qid=2)]
    out = derive(engagement([cancelled(), change_order(AFTER + timedelta(days=1))], co_lines, milestones=ms), held)
    assert out.schedule["MS:M2"].status == "cancelled" and out.schedule["MS:M3"].status == "planned"
    assert statuses(out) == {"MS:Q-1:M2": ("reversed", "contract_cancelled")}


def test_time_held_while_cancelled_is_released_when_a_change_order_reactivates():
    entry = time_entry(2, approved=AFTER)
    held = derive(tm([cancelled(model="time_and_materials")], [entry]))
    (event_id,) = held.events
    co = change_order(AFTER + timedelta(days=2), model="time_and_materials")
    lines = [line(1, "role_rate", qty="100", price="100", role="CONS"), line(1, "role_rate", qty="100", price="120", role="CONS", qid=2)]
    out = derive(engagement([cancelled(model="time_and_materials"), co], lines, assignments=[assignment()],
                            resources={5: resource()}, time_entries=[entry]), held)
    assert statuses(out) == {event_id: ("ready", None)}


def test_cancelling_a_superseded_quote_after_its_change_order_cancels_nothing():
    r1 = cancelled(at=AFTER + timedelta(days=5))
    r2 = change_order(AFTER)
    assert cancellations([(r1, []), (r2, [])]) == [None, None]
    assert cancellations([(cancelled(), []), (r2, [])]) == [CANCEL, None]


def test_the_approved_quotes_deleted_at_the_source_withdraw_the_engagement():
    ms = [milestone("M1", accepted=BEFORE)]
    active = derive(engagement([quote(model="milestone", **TERM)], milestones=ms))
    gone = derive(engagement([quote(model="milestone", status="draft", **TERM)], milestones=ms), active)
    assert gone.contract.status == "cancelled"
    assert {k: i.status for k, i in gone.schedule.items()} == {"MS:M1": "eligible", "MS:M2": "cancelled"}
    assert statuses(gone) == {"MS:Q-1:M1": ("reversed", None)}


# --- when the cancellation happened ------------------------------------------------------------

def test_the_cancellation_time_is_the_crms_stamp_else_what_capture_saw_else_the_approval():
    assert cancelled_at(quote(status="cancelled", cancelled=CANCEL)) == CANCEL
    # the CRM left updated_at before the approval (it did not stamp the cancellation): capture's time
    assert cancelled_at(quote(status="cancelled", cancelled=T0 - timedelta(days=1), since=AFTER)) == AFTER
    # nothing dates it: the approval, so everything after it is held, never billed
    assert cancelled_at(quote(status="cancelled", cancelled=T0 - timedelta(days=1))) == T0


# --- order of arrival --------------------------------------------------------------------------

HOURS = st.sampled_from([-3, -1, 1, 2, 5])  # relative to the cancellation; None: not (yet) happened
facts = st.fixed_dictionaries({
    "M1": st.none() | HOURS, "M2": st.none() | HOURS,
    "202611": st.none() | HOURS, "202612": st.none() | HOURS,
    "time": st.lists(st.none() | HOURS, max_size=4),
    "cancel": st.booleans(),
})


def state_of(known: dict, f: dict):
    """The view once the facts named in ``known`` have reached the sync."""
    at = lambda h: CANCEL + timedelta(hours=h)  # noqa: E731
    q = (quote(model="time_and_materials", status="cancelled", cancelled=CANCEL, **TERM) if "cancel" in known and f["cancel"]
         else quote(model="time_and_materials", **TERM))
    lines = [line(1, "role_rate", qty="1000", price="100", role="CONS"),
             line(2, "milestone", price="1000", code="M1"), line(3, "milestone", price="2000", code="M2"),
             line(4, "fixed_fee", price="3000")]
    ms = [milestone(c, accepted=at(f[c])) if c in known and f[c] is not None else milestone(c, status="planned")
          for c in ("M1", "M2")]
    periods = {cd: period(cd, opened=at(f[cd])) for cd in ("202611", "202612") if cd in known and f[cd] is not None}
    entries = [time_entry(i + 1, approved=at(h)) for i, h in enumerate(f["time"]) if f"time{i}" in known and h is not None]
    return engagement([q], lines, milestones=ms, periods=periods, assignments=[assignment()], resources={5: resource()},
                      time_entries=entries)


@settings(max_examples=120, deadline=None)
@given(facts, st.randoms(use_true_random=False))
def test_the_order_of_arrival_does_not_change_the_outcome_the_source_times_decide(f, rnd):
    names = ["cancel", "M1", "M2", "202611", "202612", *(f"time{i}" for i in range(len(f["time"])))]
    finals = []
    for _ in range(2):
        order = names[:]
        rnd.shuffle(order)
        out, known = None, set()
        for name in order:
            known.add(name)
            out = derive(state_of(known, f), out)
        finals.append(out)
    first, second = finals
    live = lambda out: {k: e for k, e in out.events.items() if e.status != "reversed"}  # noqa: E731
    assert live(first) == live(second)
    assert first.schedule == second.schedule and first.contract == second.contract
    for k in set(first.events) ^ set(second.events):  # written in one order only: taken back
        assert (first.events.get(k) or second.events.get(k)).status == "reversed"
    # and what the source times say
    direct = derive(state_of(set(names), f))
    assert {k: (e.status, e.hold_reason) for k, e in live(first).items()} == statuses(direct)
    happened = {name for name in ("M1", "M2", "202611", "202612") if f[name] is not None}
    happened |= {f"time{i}" for i, h in enumerate(f["time"]) if h is not None}
    seen = set()
    for k, e in live(first).items():
        if e.event_type == "time":
            name = f"time{int(e.source_ref.rsplit(':', 1)[1]) - 1}"
            h = f["time"][int(name[4:])]
        else:
            name = k.rsplit(":", 1)[1]
            h = f[name]
        seen.add(name)
        late = f["cancel"] and h > 0
        assert (e.status, e.hold_reason) == (("on_hold", "contract_cancelled") if late else ("ready", None)), (k, h)
    assert seen == happened  # everything that happened is billable or held: nothing silently dropped
