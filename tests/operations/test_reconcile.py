"""Reconcile's judgement of one engagement, on rows (the stack scenario runs the whole command)."""
from datetime import timedelta

from streams.operations.reconcile import ErpRows, _engagement
from streams.rules import contract_life
from streams.rules.engagement import derive
from streams.rules.pricing import approved_revisions
from tests.rules.builders import T0, milestone, quote
from tests.rules.contract_life import AFTER, BEFORE, CANCEL, MILESTONES, TERM, engagement


def erp_of(out) -> ErpRows:
    """The ERP as the sync wrote ``out``."""
    return ErpRows(
        events={k: e.model_dump() for k, e in out.events.items()}, receivables={},
        contracts={out.contract.contract_number: out.contract.model_dump()},
        schedule={(i.contract_number, k): i.model_dump() for k, i in out.schedule.items()},
    )


def judge(view, erp):
    out = derive(view)
    revisions = approved_revisions(view.quotes, view.lines)
    return _engagement(view.contract_number, out, contract_life.in_force(revisions), erp, revisions[-1][0])


MS = [milestone("M1", accepted=BEFORE), milestone("M2", accepted=AFTER)]


def test_held_work_of_a_cancelled_contract_is_reported_explained():
    view = engagement([quote(model="milestone", status="cancelled", cancelled=CANCEL, **TERM)], MILESTONES, milestones=MS)
    findings = judge(view, erp_of(derive(view)))
    assert [(f.kind, f.key, f.explained) for f in findings] == [("held_contract_cancelled", "MS:Q-1:M2", True)]
    assert findings[0].cause == "milestone accepted after the contract was cancelled: held until a change order re-activates it"


def test_a_cancellation_only_capture_dated_explains_what_the_source_columns_cannot_show():
    """The CRM left updated_at before the approval: the sync dated the cancellation by the commit
    time it captured; the tables alone date it at the approval, so M1 looks held to reconcile."""
    stale = dict(model="milestone", status="cancelled", cancelled=T0 - timedelta(days=1), **TERM)
    synced = derive(engagement([quote(**stale, since=CANCEL)], MILESTONES, milestones=MS))
    findings = judge(engagement([quote(**stale)], MILESTONES, milestones=MS), erp_of(synced))
    differs = [f for f in findings if f.kind in ("status_differs", "amount_differs")]
    assert {f.key for f in differs} == {"MS:Q-1:M1", "Q-1/MS:M1", "Q-1"}
    assert all(f.explained for f in findings)


def test_a_stale_contract_status_is_unexplained():
    view = engagement([quote(model="milestone", status="cancelled", cancelled=CANCEL, **TERM)], MILESTONES, milestones=MS)
    erp = erp_of(derive(view))
    erp.contracts["Q-1"]["status"] = "active"  # the ERP missed the cancellation
    (stale,) = [f for f in judge(view, erp) if f.kind == "status_differs"]
    assert stale.key == "Q-1" and not stale.explained and stale.cause == "contract is active, the sources say cancelled"
