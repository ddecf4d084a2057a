"""`q2c replay --yes` re-processes every retained change from the start, with the worker's state
deleted; the ERP, PSA, CRM and warehouse end exactly as before (updated_at included: nothing is rewritten)."""
import time

import pytest

from streams.kafka_io import lag_by_partition, worker_lag
from streams.operations.replay import replay_everything
from streams.testing.firm import crash_worker, eventually
from streams.topics import AUDIT, canonical_topics, source_topics
from tests.commands import q2c

pytestmark = pytest.mark.stack

TABLES = {
    "erp": ["erp_inbound.contract", "erp_inbound.billing_schedule", "erp_inbound.billing_event",
            "erp_inbound.project_cost", "erp_inbound.receivable"],
    "psa": ["psa.project", "psa.milestone"],
    "crm": ["crm.account_financials"],
    "warehouse": ["dw.contract", "dw.schedule_item", "dw.billing_event", "dw.project_cost", "dw.receivable",
                  "dw.time_entry", "dw.quote", "dw.project"],
}


def snapshot(firm) -> dict[str, list]:
    out = {}
    for db, tables in TABLES.items():
        conn = getattr(firm, db)
        for table in tables:
            rows = conn.rows(f"select * from {table} order by 1, 2")
            if db == "warehouse":  # load timestamps are the warehouse's metadata, not its content
                rows = [{k: v for k, v in r.items() if k not in ("first_seen_at", "updated_at")} for r in rows]
            out[table] = rows
    return out


def rebuilds(stack) -> int:
    """How many replays the worker has rebuilt its mirror for (its log says so each time): a
    replay that did not rewind would leave every table as it was, and prove nothing."""
    return stack.worker.log.read_text(errors="replace").count("replay: mirror rebuilt;")


def caught_up(stack) -> bool:
    """The worker and the warehouse loader (canonical events and audit records) have committed everything."""
    lag = lag_by_partition(stack.s, source_topics())
    assert not lag, f"events not yet committed: {lag}"
    loaded = lag_by_partition(stack.s, [*canonical_topics(), AUDIT], f"{stack.s.app_id}-warehouse")
    assert not loaded, f"events not yet loaded into the warehouse: {loaded}"
    return True


def test_replay_from_the_start_ends_exactly_as_before(stack, firm, psa, ids):
    n = ids()
    firm.account(n)
    firm.quote(n, n, f"Q-P{n}", "milestone", "2026-11-01", "2027-03-31")
    firm.line(n * 10 + 1, n, 1, "milestone", price="2500", code="R1")
    firm.approve(n)
    pid = psa.project_of(f"Q-P{n}")["id"]
    eventually(lambda: firm.psa.one("select 1 from psa.milestone where project_id = %s", pid))
    psa.accept(pid, "R1")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.billing_event where billing_event_id = %s", f"MS:Q-P{n}:R1"))
    eventually(lambda: caught_up(stack), what="the worker caught up before the replay")
    time.sleep(3)
    before = snapshot(firm)
    assert before["erp_inbound.contract"], "the replay test needs something to replay"
    eventually(lambda: audit_count(firm, f"Q-P{n}") >= 4 and worker_lag(stack.s, [AUDIT], f"{stack.s.app_id}-warehouse") == 0,
               what="every audit record loaded")
    recorded = audit_count(firm, None)
    rebuilt = rebuilds(stack)
    done = q2c("replay", "--yes", timeout=300)  # as an operator runs it: it follows the replay to its end
    assert done.returncode == 0 and "replay done" in done.stdout, done.stdout + done.stderr
    eventually(lambda: caught_up(stack), timeout=180, what="the worker caught up after the replay")
    assert rebuilds(stack) > rebuilt, "the mirror rebuilt from the first retained change"
    time.sleep(5)
    assert_unchanged(before, snapshot(firm))
    assert audit_count(firm, None) == recorded, "a replay adds no audit records"


def audit_count(firm, number: str | None) -> int:
    """Audit records of one engagement, or (None) of all."""
    if number is None:
        return firm.warehouse.one("select count(*) as n from audit.sink_write")["n"]
    return firm.warehouse.one("select count(*) as n from audit.sink_write where contract_number = %s", number)["n"]


def assert_unchanged(before: dict[str, list], after: dict[str, list]) -> None:
    for table in before:
        assert after[table] == before[table], f"{table} changed after the replay: {_differences(before[table], after[table])}"


def _differences(before: list[dict], after: list[dict], shown: int = 5) -> str:
    """The rows a replay changed, by their first column: which fields, from what to what."""
    key = lambda row: next(iter(row.values()))  # noqa: E731 - the snapshot orders by it
    old, new = {key(r): r for r in before}, {key(r): r for r in after}
    lines = [f"{k}: gone" for k in old.keys() - new.keys()] + [f"{k}: new {new[k]}" for k in new.keys() - old.keys()]
    for k in old.keys() & new.keys():
        fields = {f: (old[k][f], new[k].get(f)) for f in old[k] if old[k][f] != new[k].get(f)}
        if fields:
            lines.append(f"{k}: {fields}")
    return f"{len(lines)} rows differ; " + "; ".join(sorted(lines)[:shown])


def test_a_worker_crashed_while_replaying_resumes_and_then_derives_new_changes(stack, firm, psa, ids):
    """Restarted in the middle of the rebuild, the worker resumes from its committed offsets: what
    it had read up to its end counts as rebuilt, so it neither waits for events that will not
    come again nor derives before the rebuild is whole."""
    n = ids()
    firm.account(n)
    firm.quote(n, n, f"Q-K{n}", "milestone", "2026-11-01", "2027-03-31")
    firm.line(n * 10 + 1, n, 1, "milestone", price="1500", code="K1")
    firm.approve(n)
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", f"Q-K{n}"))
    eventually(lambda: caught_up(stack), what="the worker caught up before the replay")
    time.sleep(3)
    before = snapshot(firm)
    replay_everything(stack, say=lambda line: None)
    time.sleep(4)  # rebuilding: the small topics are read to their end and committed, the large ones not yet
    crash_worker(stack)
    target = stack.s.run_dir / "replay-target.json"
    eventually(lambda: not target.exists(), timeout=240, what="the replay finished after the crash")
    eventually(lambda: caught_up(stack), timeout=120, what="the worker caught up after the replay")
    time.sleep(5)
    assert_unchanged(before, snapshot(firm))
    m = n + 1  # and the worker derives again
    firm.account(m)
    firm.quote(m, m, f"Q-K{m}", "milestone", "2026-11-01", "2027-03-31")
    firm.line(m * 10 + 1, m, 1, "milestone", price="700", code="K1")
    firm.approve(m)
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", f"Q-K{m}"),
               what="a quote approved after the replay")
