"""The sinks' one writer against the real ERP database: a write whose connection was cut is
retried on a new connection, the wait is reported as the sink's health, and an error that is not
transient is raised at once."""
import psycopg
import pytest

from streams.sinks.writer import SinkWriter

pytestmark = pytest.mark.stack


def test_a_cut_connection_is_replaced_and_the_write_goes_through(stack):
    waits: list[tuple[str, bool]] = []
    writer = SinkWriter(lambda database: stack.s.dsn(database, "sync"), lambda what, waiting: waits.append((what, waiting)))
    first = writer.connection("erp")
    assert writer.connection("erp") is first  # kept between writes
    with psycopg.connect(stack.s.dsn("erp", "admin"), autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(%s)", (first.info.backend_pid,))
    seen: list[int] = []
    writer.write("ERP write", "erp", lambda conn: seen.append(conn.execute("select 1").fetchone()[0]))
    assert seen == [1]
    assert writer.connection("erp") is not first and first.closed
    assert waits == [("ERP write", True), ("ERP write", False)]
    writer.close()
    assert writer.connection("erp").info.backend_pid != first.info.backend_pid


def test_an_error_that_is_not_transient_is_raised_at_once(stack):
    waits: list[tuple[str, bool]] = []
    writer = SinkWriter(lambda database: stack.s.dsn(database, "sync"), lambda what, waiting: waits.append((what, waiting)))
    with pytest.raises(psycopg.errors.UndefinedTable):
        writer.write("ERP write", "erp", lambda conn: conn.execute("select * from erp_inbound.no_such_table"))
    assert waits == []
    writer.close()
