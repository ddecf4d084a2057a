"""Least privilege on the real stack: each role can do what its part needs and nothing more."""
import psycopg
import pytest

from streams.config import PROJECT_ROOT

pytestmark = pytest.mark.stack


def can(dsn: str, statement: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute(statement)
            conn.rollback()
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False
    except psycopg.OperationalError as exc:
        if "permission denied" in str(exc):
            return False
        raise


def test_debezium_reads_only_the_captured_tables(stack):
    s = stack.s
    assert can(s.dsn("crm", "capture"), "select * from crm.quote")
    assert not can(s.dsn("crm", "capture"), "select * from crm.account_financials")
    assert not can(s.dsn("crm", "capture"), "update crm.quote set status = status")
    assert not can(s.dsn("erp", "capture"), "select * from erp_inbound.contract")


def test_the_sync_writes_only_what_it_owns(stack):
    s = stack.s
    assert can(s.dsn("erp", "sync"), "update erp_inbound.contract set revision = revision")
    assert not can(s.dsn("erp", "sync"), "delete from erp_inbound.contract")
    assert can(s.dsn("crm", "sync"), "update crm.account_financials set open_receivable = open_receivable")
    assert not can(s.dsn("crm", "sync"), "select * from crm.quote")
    assert not can(s.dsn("psa", "sync"), "update psa.timesheet_entry set hours = hours")
    assert not can(s.dsn("finance", "sync"), "select * from finance.ar_invoice_hdr")


def test_the_reader_reads_the_warehouses_dw_schema_and_nothing_else(stack):
    s = stack.s
    reader = s.dsn("warehouse", "reader")
    assert can(reader, "select * from dw.contract")  # a table the sync made after the role's grants
    assert can(reader, "select * from dw.margin_by_engagement")
    assert can(reader, "select * from dw.receivables_aging")
    assert not can(reader, "insert into dw.quote_line (id) values (-1)")
    assert not can(reader, "update dw.contract set revision = revision")
    assert not can(reader, "create view dw.mine as select 1")
    assert not can(reader, "select * from audit.sink_write")
    assert not can(s.dsn("erp", "reader"), "select * from erp_inbound.contract")
    assert not can(s.dsn("crm", "reader"), "select * from crm.quote")


def test_secrets_stay_out_of_committed_config_and_logs(stack):
    secrets = [stack.s.password(role) for role in ("admin", "capture", "sync", "reader")]
    committed = [p for p in (PROJECT_ROOT / "connect").glob("*.json")] + [PROJECT_ROOT / "docker-compose.yml"]
    for path in committed:
        text = path.read_text()
        assert not any(secret in text for secret in secrets), path
    for log in stack.s.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), f"a password appears in {log.name}"
        assert "owner@example.com" not in text and "a.person@example.com" not in text, f"personal data in {log.name}"
