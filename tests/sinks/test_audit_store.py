"""The audit trail's store on the real PostgreSQL: each record kept once, a record that repeats its
row's last change not kept, the order of a batch kept."""
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest

from streams.sinks import audit
from streams.state.audit import Cause, record
from streams.testing.firm import database_for_sync

pytestmark = pytest.mark.stack

CAUSE = Cause("psa", 23, "812", datetime(2026, 2, 2, 10, tzinfo=UTC), "psa.timesheet_entry:9")
AT = datetime(2026, 2, 2, 10, 0, 1, tzinfo=UTC)


@pytest.fixture
def conn(stack):
    dsn = database_for_sync(stack.s, "audit_store", None)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("drop schema if exists audit cascade")
        audit.ensure_schema(c)
        yield c


def _rec(before, after, lsn=23):
    return record("erp", "erp_inbound.billing_event", "TE:1", before, after, replace(CAUSE, lsn=lsn), "Q-1")


def test_each_change_kept_once_in_order_with_its_cause(conn):
    a, b = {"status": "on_hold", "trace_id": "t"}, {"status": "ready", "trace_id": "t"}
    assert audit.write(conn, [(_rec(None, a), AT), (_rec(a, b, 24), AT)]) == 2
    assert audit.write(conn, [(_rec(None, a), AT), (_rec(a, b, 24), AT)]) == 0  # delivered again
    assert audit.write(conn, [(_rec(a, b, 99), AT)]) == 0  # a batch done again: the same change, another cause
    assert audit.write(conn, [(_rec(b, a, 100), AT), (_rec(a, b, 101), AT)]) == 2  # the row really went back and forth
    rows = audit.history(conn, "Q-1")
    assert [(r["before_row"] and r["before_row"]["status"], r["after_row"]["status"]) for r in rows] == [
        (None, "on_hold"), ("on_hold", "ready"), ("ready", "on_hold"), ("on_hold", "ready")]
    first = rows[0]
    assert (first["source_database"], first["source_ref"], first["source_lsn"], first["source_transaction"]) == (
        "psa", "psa.timesheet_entry:9", 23, "812")
    assert first["source_committed_at"] == CAUSE.committed_at and first["written_at"] == AT
    assert [r["trace_id"] for r in rows] == ["t"] * 4


def test_a_batch_repeating_a_change_keeps_it_once(conn):
    a = {"status": "ready"}
    assert audit.write(conn, [(_rec(None, a), AT), (_rec(None, a, 30), AT)]) == 1
