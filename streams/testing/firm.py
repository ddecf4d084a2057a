"""Drive the client firm's systems the way its users do: SQL on crm, psa and finance (the tests'
scenarios and the benchmarks)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row


class Db:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        """The connection, opened again after the database went away (fault tests restart it)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row, connect_timeout=5)
        return self._conn

    def run(self, sql: str, *params: Any) -> None:
        self._execute(sql, params)

    def rows(self, sql: str, *params: Any) -> list[dict]:
        return self._execute(sql, params).fetchall()

    def _execute(self, sql: str, params: tuple):
        conn = self.conn
        in_transaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        try:
            return conn.execute(sql, params or None)
        except psycopg.OperationalError:
            if in_transaction or (not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
                raise  # a real error, or a transaction that is lost: the caller redoes all of it
            self._conn = None  # the server dropped us (restart, terminate): once more on a new connection
            return self.conn.execute(sql, params or None)

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


def crash_worker(stack) -> None:
    """``kill -9`` the worker, as a crash would, and start it again."""
    from streams.stack.process import kill_hard

    kill_hard(stack.worker.pidfile)
    time.sleep(2)  # its listening ports are released
    stack.worker.start()


def settle(seconds: float = 4) -> None:
    """Wait long enough for a change that should produce nothing to have been processed."""
    time.sleep(seconds)


def dsn_of(settings, database: str, role: str) -> str:
    """The DSN of ``database`` on the stack's PostgreSQL for ``role``."""
    return settings.dsn("postgres", role).rsplit("/", 1)[0] + f"/{database}"


def database_for_sync(settings, name: str, ddl: str | None) -> str:
    """Create ``name`` (with the client's DDL) for the sync's role; its DSN for that role."""
    with psycopg.connect(settings.dsn("postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')
        conn.execute(f'grant connect, create on database "{name}" to q2c_sync')
    if ddl:
        with psycopg.connect(dsn_of(settings, name, "admin"), autocommit=True) as conn:
            if not conn.execute("select 1 from information_schema.schemata where schema_name = 'erp_inbound'").fetchone():
                conn.execute(ddl)
            conn.execute("grant usage on schema erp_inbound to q2c_sync")
            conn.execute("grant select, insert, update on all tables in schema erp_inbound to q2c_sync")
    return dsn_of(settings, name, "sync")


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


class Delivery:
    """PSA and finance verbs, on top of ``Firm``."""

    def __init__(self, firm: Firm):
        self.f = firm

    def resource(self, rid: int, role: str = "CONS", cost: str = "80", currency: str = "GBP") -> None:
        self.f.psa.run(
            "insert into psa.resource (id, employee_no, full_name, email, role_code, home_region, legal_entity,"
            " cost_rate, cost_currency) values (%s, %s, 'A Person', 'a.person@example.com', %s, 'EMEA', 'UK01', %s, %s)",
            rid, f"E{rid}", role, cost, currency)

    def project_of(self, number: str) -> dict:
        return eventually(lambda: self.f.psa.one("select * from psa.project where crm_quote_number = %s", number),
                          what=f"the PSA project of {number}")

    def assign(self, aid: int, project_id: int, rid: int, role: str = "CONS", start: str = "2026-11-01", end: str = "2027-04-30") -> None:
        self.f.psa.run("insert into psa.assignment (id, project_id, resource_id, role_code, planned_hours, start_date, end_date)"
                       " values (%s, %s, %s, %s, 100, %s, %s)", aid, project_id, rid, role, start, end)

    def time(self, tid: int, project_id: int, rid: int, hours: str, day: str = "2026-11-10", status: str = "approved",
             billable: bool = True) -> None:
        self.f.psa.run(
            "insert into psa.timesheet_entry (id, resource_id, project_id, work_date, hours, billable, status, approved_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, case when %s = 'approved' then now() end)",
            tid, rid, project_id, day, hours, billable, status, status)

    def expense(self, eid: int, project_id: int, rid: int, amount: str, currency: str = "GBP", status: str = "approved") -> None:
        self.f.psa.run(
            "insert into psa.expense_line (id, resource_id, project_id, expense_date, category, amount, currency, status)"
            " values (%s, %s, %s, '2026-11-12', 'travel', %s, %s, %s)", eid, rid, project_id, amount, currency, status)

    def accept(self, project_id: int, code: str) -> None:
        self.f.psa.run("update psa.milestone set status = 'accepted', accepted_at = now(), accepted_by = 'client'"
                       " where project_id = %s and milestone_code = %s", project_id, code)

    def milestone_engagement(self, n: int, number: str, price: str, code: str, accept: bool = True) -> int:
        """Account ``n``, a milestone quote ``number`` of one line approved, its PSA project
        provisioned with the milestone (and the milestone accepted, unless ``accept`` is False):
        the project's id."""
        self.f.account(n)
        self.f.quote(n, n, number, "milestone", "2026-11-01", "2027-03-31")
        self.f.line(n * 10 + 1, n, 1, "milestone", price=price, code=code)
        self.f.approve(n)
        pid = self.project_of(number)["id"]
        eventually(lambda: self.f.psa.one("select 1 from psa.milestone where project_id = %s", pid),
                   what=f"the milestone of {number} provisioned")
        if accept:
            self.accept(pid, code)
        return pid

    def tax(self, code: str = "STD", country: str = "GB", rate: str = "20.000") -> None:
        self.f.finance.run("insert into finance.gl_tax_rate (tax_cd, country_cd, rate_pct, valid_from) values (%s, %s, %s, '2000-01-01')"
                           " on conflict do nothing", code, country, rate)

    def period(self, cd: str, status: str) -> None:
        y, m = int(cd[:4]), int(cd[4:])
        self.f.finance.run(
            "insert into finance.gl_period (period_cd, start_dt, end_dt, status_cd, last_upd_ts)"
            " values (%s, make_date(%s, %s, 1), (make_date(%s, %s, 1) + interval '1 month - 1 day')::date, %s, localtimestamp)"
            " on conflict (period_cd) do update set status_cd = excluded.status_cd, last_upd_ts = excluded.last_upd_ts",
            cd, y, m, y, m, status)

    def customer(self, cust_no: str, account_number: str) -> None:
        # clerks pad and lower-case: the sync must trim and compare case-insensitively
        self.f.finance.run(
            "insert into finance.ar_customer (cust_no, cust_name, crm_account_no, country_cd, curr_cd, entity_cd, status_cd, last_upd_ts)"
            " values (%s, 'Client', %s, 'GB', 'GBP', 'UK01', 'A', localtimestamp)", cust_no, f" {account_number.lower()} ")

    def invoice(self, inv_no: str, cust_no: str, contract_ref: str | None, gross: str, lines: list[tuple[str, str, str]],
                status: str = "IS", due: str = "2026-10-31", day: str = "2026-10-01") -> None:
        self.f.finance.run(
            "insert into finance.ar_invoice_hdr (inv_no, cust_no, contract_ref, inv_dt, due_dt, curr_cd, net_amt, tax_amt, gross_amt,"
            " status_cd, entity_cd, last_upd_ts) values (%s, %s, %s, %s, %s, 'GBP', %s, 0, %s, %s, 'UK01', localtimestamp)",
            inv_no, cust_no, contract_ref, day, due, gross, gross, status)
        for n, (src_type, src_ref, amount) in enumerate(lines, 1):
            self.f.finance.run(
                "insert into finance.ar_invoice_line (inv_no, line_no, src_type, src_ref, qty, unit_prc, net_amt, tax_cd)"
                " values (%s, %s, %s, %s, 1, %s, %s, 'STD')", inv_no, n, src_type, src_ref, amount, amount)

    def receipt(self, rcpt_no: str, inv_no: str, cust_no: str, amount: str, day: str = "2026-12-15") -> None:
        self.f.finance.run("insert into finance.ar_receipt (rcpt_no, inv_no, cust_no, rcpt_dt, amt, curr_cd, method_cd, last_upd_ts)"
                           " values (%s, %s, %s, %s, %s, 'GBP', 'WIRE', localtimestamp)", rcpt_no, inv_no, cust_no, day, amount)


def erp_rows_without_their_record(firm, numbers: list[str]) -> list[tuple[str, str]]:
    """ERP rows of the engagements whose current values are not the after of their row's last audit record."""
    missing = []
    for table, key_sql in (("erp_inbound.contract", "contract_number"),
                           ("erp_inbound.billing_schedule", "contract_number || '/' || schedule_key"),
                           ("erp_inbound.billing_event", "billing_event_id"),
                           ("erp_inbound.project_cost", "cost_event_id")):
        rows = firm.erp.rows(f"select {key_sql} as k, status from {table} where contract_number = any(%s)", numbers)
        last = {r["row_key"]: r["after_row"] for r in firm.warehouse.rows(
            "select distinct on (row_key) row_key, after_row from audit.sink_write where table_name = %s"
            " and contract_number = any(%s) order by row_key, seq desc", table, numbers)}
        missing += [(table, r["k"]) for r in rows if last.get(r["k"], {}).get("status") != r["status"]]
    return missing
