"""Drive the client firm's systems the way its users do: SQL on crm, psa and finance."""
from __future__ import annotations

import time
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row


class Db:
    def __init__(self, dsn: str):
        self.conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)

    def run(self, sql: str, *params: Any) -> None:
        self.conn.execute(sql, params or None)

    def rows(self, sql: str, *params: Any) -> list[dict]:
        return self.conn.execute(sql, params or None).fetchall()

    def one(self, sql: str, *params: Any) -> dict | None:
        rows = self.rows(sql, *params)
        return rows[0] if rows else None


def eventually(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (the sync is asynchronous)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        time.sleep(0.25)
    if isinstance(last, AssertionError):
        raise last
    raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")


def settle(erp: Db, seconds: float = 4) -> None:
    """Wait long enough for a change that should produce nothing to have been processed."""
    time.sleep(seconds)


class Firm:
    """The client firm's databases, with a few verbs its users perform."""

    def __init__(self, settings):
        self.crm = Db(settings.dsn("crm"))
        self.psa = Db(settings.dsn("psa"))
        self.finance = Db(settings.dsn("finance"))
        self.erp = Db(settings.dsn("erp"))
        self.warehouse = Db(settings.dsn("warehouse"))

    def account(self, n: int, country: str = "GB", currency: str = "GBP") -> str:
        number = f"ACC-{n:08d}"
        self.crm.run(
            "insert into crm.account (id, account_number, name, billing_country, currency, legal_entity, owner_email)"
            " values (%s, %s, %s, %s, %s, 'UK01', 'owner@example.com')", n, number, f"Client {n}", country, currency)
        self.crm.run("insert into crm.opportunity (id, account_id, name, stage) values (%s, %s, 'Opp', 'closed_won')", n, n)
        return number

    def quote(self, qid: int, account: int, number: str, model: str, start: str, end: str, *, discount: str = "0",
              status: str = "draft", revision: int = 1, amends: int | None = None, currency: str = "GBP") -> None:
        self.crm.run(
            "insert into crm.quote (id, quote_number, opportunity_id, account_id, revision, amends_quote_id, status,"
            " commercial_model, currency, start_date, end_date, discount_pct, total_amount)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0)",
            qid, number, account, account, revision, amends, status, model, currency, start, end, discount)

    def line(self, lid: int, qid: int, no: int, kind: str, qty: str = "1", price: str = "1000", *, discount: str = "0",
             role: str | None = None, code: str | None = None, due: str | None = None, tax: str = "STD") -> None:
        self.crm.run(
            "insert into crm.quote_line (id, quote_id, line_no, line_type, service_code, role_code, quantity,"
            " unit_price, discount_pct, milestone_code, milestone_due, tax_code)"
            " values (%s, %s, %s, %s, 'IMPL', %s, %s, %s, %s, %s, %s, %s)",
            lid, qid, no, kind, role, qty, price, discount, code, due, tax)

    def approve(self, qid: int) -> None:
        self.crm.run("update crm.quote set status = 'approved', approved_at = now(), approved_by = 'approver' where id = %s", qid)
