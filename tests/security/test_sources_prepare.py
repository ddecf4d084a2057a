"""``q2c sources prepare``: what a firm's DBA runs on its databases, idempotent, on the real
PostgreSQL; ``--dry-run`` shows the SQL with the passwords masked; a server that cannot be
captured is said to be wrong in words."""
import psycopg
import pytest

from streams import sources
from streams.config import Settings
from tests.commands import q2c

pytestmark = pytest.mark.stack


def test_dry_run_prints_every_statement_with_the_passwords_masked(stack):
    done = q2c("sources", "prepare", "--dry-run")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert stack.s.password("capture") not in out and stack.s.password("sync") not in out and "********" in out
    for expected in ("CREATE ROLE q2c_capture LOGIN REPLICATION", "GRANT SELECT ON crm.account", "CREATE PUBLICATION q2c_psa",
                     "CREATE TABLE IF NOT EXISTS q2c_signal.debezium_signal", "\\connect finance"):
        assert expected in out, expected
    assert "REPLICA IDENTITY FULL" not in out  # every captured table of the client's has a primary key


def test_prepare_is_idempotent_and_leaves_capture_running(stack):
    for _ in range(2):
        done = q2c("sources", "prepare")
        assert done.returncode == 0, done.stderr
    with psycopg.connect(stack.s.dsn("psa")) as conn:
        published = {r[0] for r in conn.execute("select schemaname || '.' || tablename from pg_publication_tables"
                                                " where pubname = 'q2c_psa'")}
    assert published == {*sources.captured_tables()["psa"], sources.SIGNAL_TABLE}
    assert not stack.postgres.inactive_slots()


def test_a_table_without_a_key_gets_full_replica_identity(stack):
    with psycopg.connect(stack.s.dsn("finance"), autocommit=True) as conn:
        conn.execute("create table if not exists finance.q2c_unkeyed_probe (a int)")
        try:
            assert sources.unkeyed(conn, ["finance.q2c_unkeyed_probe", "finance.ar_receipt"]) == ["finance.q2c_unkeyed_probe"]
        finally:
            conn.execute("drop table finance.q2c_unkeyed_probe")


def test_a_server_without_logical_decoding_is_said_to_be_wrong_in_words(stack, monkeypatch):
    """The stack's server has wal_level = logical and changing it needs a restart of the server
    every other test uses, so only the answer to ``SHOW wal_level`` is replaced (a stand-in,
    said here); every other query goes to the real server."""
    settings = Settings()
    real_connect = psycopg.connect

    class Claims:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.conn.close()

        def execute(self, query, *args):
            if query == "SHOW wal_level":
                return self.conn.execute("select 'replica'")
            return self.conn.execute(query, *args)

    monkeypatch.setattr(sources.psycopg, "connect", lambda *a, **k: Claims(real_connect(*a, **k)))
    found = sources.problems(settings)
    assert len(found) == 3 and all("wal_level is 'replica'; logical decoding needs wal_level = logical" in p for p in found)
