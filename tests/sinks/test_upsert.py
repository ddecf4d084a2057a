"""The batched upsert against the real ERP interface: one statement a batch, rows written only
when they differ, the last row of a key winning, NULLs and the ERP's column types kept."""
from datetime import date
from decimal import Decimal as D

import psycopg
import pytest

from streams.sinks.erp import CONTRACT_COLUMNS
from streams.sinks.upsert import upsert

pytestmark = pytest.mark.stack


def _contract(number: str, value: str = "1000.00", project_code=None) -> dict:
    return {"contract_number": number, "revision": 1, "client_account_number": "ACC-1", "client_name": "Client",
            "legal_entity": "UK01", "commercial_model": "fixed_fee", "currency": "GBP", "start_date": date(2026, 1, 1),
            "end_date": date(2026, 12, 31), "payment_terms_days": 30, "contract_value": D(value), "status": "active",
            "project_code": project_code, "trace_id": "t"}


def _held(conn, numbers):
    return {r[0]: r[1:] for r in conn.execute(
        "select contract_number, contract_value, project_code, updated_at from erp_inbound.contract"
        " where contract_number = any(%s)", (numbers,)).fetchall()}


def test_a_batch_is_written_once_and_again_changes_only_what_differs(stack, ids):
    n = ids()
    numbers = [f"Q-UP{n}-{k}" for k in range(2000)]
    with psycopg.connect(stack.s.dsn("erp", "sync"), autocommit=True) as conn:
        assert upsert(conn, "erp_inbound.contract", CONTRACT_COLUMNS, ["contract_number"],
                      [_contract(x) for x in numbers]) == 2000
        first = _held(conn, numbers)
        assert len(first) == 2000 and first[numbers[0]][:2] == (D("1000.00"), None)  # every project_code NULL
        # the same rows again, one changed, and a key twice in the batch: its last row wins
        rows = [_contract(x) for x in numbers]
        rows[5] = _contract(numbers[5], "1500.00", "PRJ-5")
        rows.append(_contract(numbers[7], "999.99"))
        rows.append(_contract(numbers[7], "700.00"))
        upsert(conn, "erp_inbound.contract", CONTRACT_COLUMNS, ["contract_number"], rows)
        second = _held(conn, numbers)
    changed = {x for x in numbers if second[x] != first[x]}
    assert changed == {numbers[5], numbers[7]}
    assert second[numbers[5]][:2] == (D("1500.00"), "PRJ-5") and second[numbers[7]][0] == D("700.00")
    assert second[numbers[5]][2] > first[numbers[5]][2]  # updated_at moved only where a row changed


def test_an_empty_batch_writes_nothing(stack):
    with psycopg.connect(stack.s.dsn("erp", "sync"), autocommit=True) as conn:
        assert upsert(conn, "erp_inbound.contract", CONTRACT_COLUMNS, ["contract_number"], []) == 0
