"""``q2c demo``: the simulated firm (``streams.demo.firm``) at work on the source databases, at
a steady rate, while the sync fills the ERP. Writes as the firm's users (the databases' owner);
reads what they would see: the projects the sync provisioned in the PSA, the ERP's billing queue."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import psycopg

from streams.config import Settings
from streams.demo.firm import Action, Ids, Observed, ReadyEvent, SimulatedFirm

SOURCES = ("crm", "psa", "finance")


@dataclass
class Tally:
    """What the demo did and what the ERP holds, for the progress display and the summary."""
    day: date | None = None
    days: int = 0
    actions: Counter = field(default_factory=Counter)
    erp: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        erp = ", ".join(f"{n} {what}" for what, n in self.erp.items())
        return f"{self.day}: {sum(self.actions.values())} changes made; ERP: {erp or 'nothing yet'}"


def first_free_ids(connections: dict[str, psycopg.Connection]) -> Ids:
    """Keys past every row the databases hold (the demo can run again, or beside the tests)."""
    highest = 0
    for db, tables in (("crm", ("account", "opportunity", "quote", "quote_line")),
                       ("psa", ("resource", "assignment", "timesheet_entry", "expense_line"))):
        for table in tables:
            highest = max(highest, connections[db].execute(f"SELECT coalesce(max(id), 0) FROM {db}.{table}").fetchone()[0])

    def after(sql: str) -> int:
        found = connections["finance"].execute(sql).fetchone()[0]
        return int(found) + 1 if found else 1
    return Ids(row=highest + 1,
               customer=after("SELECT max(substr(cust_no, 2)) FROM finance.ar_customer WHERE cust_no ~ '^D[0-9]{9}$'"),
               invoice=after("SELECT max(substr(inv_no, 5)) FROM finance.ar_invoice_hdr WHERE inv_no ~ '^DINV[0-9]{8}$'"),
               receipt=after("SELECT max(substr(rcpt_no, 4)) FROM finance.ar_receipt WHERE rcpt_no ~ '^DRC[0-9]{9}$'"))


def observe(connections: dict[str, psycopg.Connection]) -> Observed:
    psa, erp = connections["psa"], connections["erp"]
    projects = dict(psa.execute("SELECT crm_quote_number, id FROM psa.project WHERE created_by = 'integration'"
                                " AND crm_quote_number LIKE 'Q-D%'").fetchall())
    milestones: dict[int, list[str]] = {}
    for project, code in psa.execute("SELECT project_id, milestone_code FROM psa.milestone WHERE status <> 'accepted'"
                                     " ORDER BY project_id, milestone_code"):
        milestones.setdefault(project, []).append(code)
    ready = [ReadyEvent(*row) for row in erp.execute(
        "SELECT billing_event_id, contract_number, event_type, amount, currency FROM erp_inbound.billing_event"
        " WHERE status = 'ready' AND contract_number LIKE 'Q-D%' ORDER BY billing_event_id")]
    return Observed(projects, milestones, ready)


def erp_figures(erp: psycopg.Connection) -> dict[str, int]:
    contracts, events, invoices = erp.execute(
        "SELECT (SELECT count(*) FROM erp_inbound.contract), (SELECT count(*) FROM erp_inbound.billing_event),"
        " (SELECT count(*) FROM erp_inbound.receivable)").fetchone()
    return {"contracts": contracts, "billing events": events, "receivables": invoices}


def run(settings: Settings, size: int, rate: float, seed: int, start: date, days: int | None, day_seconds: float = 2.0,
        shown: Callable[[Tally], None] = lambda tally: None, stopping: Callable[[], bool] = lambda: False) -> Tally:
    """Simulate ``days`` days (None: until ``stopping()``), ``rate`` changes a second at most and
    ``day_seconds`` a day at least (the sync provisions projects and queues events meanwhile,
    which the firm's people see the next day). Each action is its own transaction; a stop comes
    between two, so the sources stay whole."""
    connections = {db: psycopg.connect(settings.dsn(db), autocommit=True) for db in (*SOURCES, "erp")}
    tally = Tally()
    try:
        firm = SimulatedFirm(seed, size, start, first_free_ids(connections))
        pause = 1.0 / rate if rate > 0 else 0.0
        last_look = 0.0

        def perform(actions: list[Action]) -> bool:
            nonlocal last_look
            for action in actions:
                if stopping():
                    return False
                started = time.monotonic()
                conn = connections[action.database]
                with conn.transaction():
                    for sql, params in action.statements:
                        conn.execute(sql, params)
                tally.actions[action.what] += 1
                if started - last_look > 1.0:
                    tally.erp, last_look = erp_figures(connections["erp"]), started
                    shown(tally)
                time.sleep(max(0.0, pause - (time.monotonic() - started)))
            return True

        tally.day = firm.today
        if not perform(firm.setup()):
            return tally
        while days is None or tally.days < days:
            tally.day, day_ends = firm.today, time.monotonic() + day_seconds
            if not perform(firm.day(observe(connections))):
                break
            tally.days += 1
            while time.monotonic() < day_ends and not stopping():
                time.sleep(0.1)
        tally.erp = erp_figures(connections["erp"])
        shown(tally)
        return tally
    finally:
        for conn in connections.values():
            conn.close()
