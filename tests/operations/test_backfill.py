"""``q2c backfill``: a table's rows read again by a Debezium incremental snapshot, on the real
stack; what the sync already holds is not written again."""
import json
from contextlib import contextmanager

import httpx
import pytest

from streams import connectors
from streams.kafka_io import read_all
from streams.operations.backfill import BackfillError, Notification, requests
from streams.testing.firm import eventually
from streams.topics import NOTIFICATIONS
from tests.commands import q2c
from tests.scenarios.engagements import engagement, events

CAPTURED = {"crm": ["crm.quote", "crm.quote_line"], "psa": ["psa.expense_line", "psa.timesheet_entry"]}


def test_one_signal_per_database_with_its_tables():
    found = requests(["psa.expense_line", "crm.quote", "psa.timesheet_entry", "crm.quote"], captured=CAPTURED)
    assert [(r.database, r.tables) for r in found] == [("crm", ("crm.quote",)),
                                                       ("psa", ("psa.expense_line", "psa.timesheet_entry"))]
    assert len({r.id for r in found}) == 2
    assert json.loads(found[1].signal_data()) == {"data-collections": ["psa.expense_line", "psa.timesheet_entry"],
                                                  "type": "incremental"}


def test_a_condition_applies_to_each_table():
    (request,) = requests(["crm.quote", "crm.quote_line"], where="id > 5", captured=CAPTURED)
    assert json.loads(request.signal_data())["additional-conditions"] == [
        {"data-collection": "crm.quote", "filter": "id > 5"}, {"data-collection": "crm.quote_line", "filter": "id > 5"}]


def test_a_table_no_connector_captures_is_refused_in_words():
    with pytest.raises(BackfillError, match="not captured: crm.account_financials"):
        requests(["crm.quote", "crm.account_financials"], captured=CAPTURED)


def test_only_incremental_snapshot_notifications_are_read():
    scan = Notification.parse(json.dumps({
        "id": "s1", "aggregate_type": "Incremental Snapshot", "type": "TABLE_SCAN_COMPLETED",
        "additional_data": {"connector_name": "psa", "data_collections": "psa.expense_line", "status": "SQL_EXCEPTION",
                            "total_rows_scanned": "0"}, "timestamp": "1"}).encode())
    assert scan.failed_table and scan.describe() == "psa.expense_line: SQL_EXCEPTION, 0 rows read"
    assert Notification.parse(b'{"id": "i", "aggregate_type": "Initial Snapshot", "type": "COMPLETED"}') is None
    assert Notification.parse(b"not json") is None


@contextmanager
def psa_connector_without(settings, table: str):
    """The PSA connector capturing every table but ``table`` (a table the firm adds to capture
    later), then as ``connect/psa.json`` has it again."""
    (path,) = [p for p in connectors.connector_files() if p.stem == "psa"]
    config = json.loads(path.read_text())["config"]
    narrowed = {**config, "table.include.list": ",".join(t for t in config["table.include.list"].split(",") if t != table)}
    httpx.put(f"{settings.connect_url}/connectors/q2c-psa/config", json=narrowed, timeout=30).raise_for_status()
    eventually(lambda: _captures(settings) == narrowed["table.include.list"], what="the PSA connector narrowed")
    connectors.wait_running(settings.connect_url, ["q2c-psa"])
    try:
        yield
    finally:
        connectors.apply(settings.connect_url, [path])
        connectors.wait_running(settings.connect_url, ["q2c-psa"])


def _captures(settings) -> str:
    return httpx.get(f"{settings.connect_url}/connectors/q2c-psa/config", timeout=10).json()["table.include.list"]


@pytest.mark.stack
def test_a_table_captured_late_is_backfilled_and_what_was_synced_stays(stack, firm, psa, ids):
    n, number, _ = engagement(firm, ids, "time_and_materials", [("role_rate", dict(qty="10", price="100", role="CONS")),
                                                                 ("expense_allowance", dict(price="500"))])
    pid = psa.project_of(number)["id"]
    psa.resource(n)
    psa.expense(n, pid, n, "100.00")
    (synced,) = eventually(lambda: events(firm, number), what="the captured expense billed")
    with psa_connector_without(stack.s, "psa.expense_line"):
        psa.expense(n + 1, pid, n, "40.00")
        psa.expense(n + 2, pid, n, "25.00")
        # a change after them in the WAL, of a table still captured: once it is in Kafka, the
        # connector has streamed past the expenses (and left them out)
        psa.resource(n + 3)
        eventually(lambda: _in_topic(stack.s, "psa.psa.resource", n + 3), what="the marker streamed")
    assert [e["source_ref"] for e in events(firm, number)] == [f"psa.expense_line:{n}"]  # the two were missed

    done = q2c("backfill", "psa.expense_line", "--timeout", "300", timeout=360)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "psa: COMPLETED (psa.expense_line " in done.stdout, done.stdout

    rows = eventually(lambda: (r := events(firm, number)) and len(r) == 3 and r, what="the missed expenses billed")
    assert {r["source_ref"]: r["amount"] for r in rows} == {
        f"psa.expense_line:{n}": synced["amount"], f"psa.expense_line:{n + 1}": 40, f"psa.expense_line:{n + 2}": 25}
    assert [r for r in rows if r["source_ref"] == f"psa.expense_line:{n}"] == [synced]  # read again, not rewritten
    notes = [Notification.parse(m) for m in _values(stack.s, NOTIFICATIONS)]
    assert {"STARTED", "TABLE_SCAN_COMPLETED", "COMPLETED"} <= {x.kind for x in notes if x}


def _values(settings, topic: str) -> list[bytes]:
    return [m.value() for m in read_all(settings, topic) if m.value()]


def _in_topic(settings, topic: str, key: int) -> bool:
    return any((json.loads(v).get("after") or {}).get("id") == key for v in _values(settings, topic))
