"""crm.account_financials: the account team's view of receivables."""
from __future__ import annotations

import dataclasses

import psycopg

from streams.rules.receivable import AccountFinancials
from streams.sinks.upsert import upsert

COLUMNS = [f.name for f in dataclasses.fields(AccountFinancials)]


def write(conn: psycopg.Connection, financials: list[AccountFinancials]) -> None:
    if not financials:
        return
    with conn.transaction():
        upsert(conn, "crm.account_financials", COLUMNS, ["account_id"], [dataclasses.asdict(f) for f in financials])
