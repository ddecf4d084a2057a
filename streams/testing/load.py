"""A generated load of source changes, as the firm's users make them, and what a clean run of it
must produce: used by the fault tests and by the benchmark."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal

from streams.testing.firm import Delivery, Firm

RATE = Decimal("150")  # per hour, no discounts
COST = Decimal("80")


@dataclass
class Load:
    base: int
    engagements: int
    entries_per_engagement: int

    @property
    def numbers(self) -> list[str]:
        return [f"Q-L{self.base + e}" for e in range(self.engagements)]

    def changes(self) -> int:
        """Source rows written (each a change event): account, opportunity, quote (insert and
        approval), line, resource, assignment, and the time entries."""
        return self.engagements * (7 + self.entries_per_engagement)

    def hours(self, e: int, t: int) -> Decimal:
        return Decimal(1 + (e + t) % 8)

    def run(self, firm: Firm, psa: Delivery, stop: threading.Event | None = None, on_error=None) -> None:
        """Write the load; survives a source database that goes away for a while (as users retry)."""
        for e in range(self.engagements):
            n = self.base + e
            _retrying(lambda n=n, e=e: self._engagement(firm, psa, n, e), on_error)

    def _engagement(self, firm: Firm, psa: Delivery, n: int, e: int) -> None:
        # each step is one source transaction: a source restart in the middle of one must not
        # leave half of it for the retry to skip
        with firm.crm.conn.transaction():
            if firm.crm.one("select 1 from crm.account where id = %s", n) is None:
                firm.account(n)
                firm.quote(n, n, f"Q-L{n}", "time_and_materials", "2026-01-01", "2026-12-31")
                firm.line(n * 10 + 1, n, 1, "role_rate", qty="100000", price=str(RATE), role="CONS")
                firm.approve(n)
        project = psa.project_of(f"Q-L{n}")
        with firm.psa.conn.transaction():
            if firm.psa.one("select 1 from psa.resource where id = %s", n) is None:
                psa.resource(n, cost=str(COST))
                psa.assign(n, project["id"], n, start="2026-01-01", end="2026-12-31")
        with firm.psa.conn.transaction():
            for t in range(self.entries_per_engagement):
                tid = n * 1000 + t
                firm.psa.run(
                    "insert into psa.timesheet_entry (id, resource_id, project_id, work_date, hours, billable, status, approved_at)"
                    " values (%s, %s, %s, %s, %s, true, 'approved', now()) on conflict do nothing",
                    tid, n, project["id"], f"2026-03-{1 + t % 28:02d}", self.hours(e, t))

    def verify(self, firm: Firm) -> dict:
        """Compare the ERP with what a clean run produces; returns the counts."""
        numbers = self.numbers
        events = firm.erp.rows(
            "select contract_number, source_ref, status, amount, quantity from erp_inbound.billing_event"
            " where contract_number = any(%s)", numbers)
        costs = firm.erp.rows(
            "select contract_number, cost_amount, hours, status from erp_inbound.project_cost where contract_number = any(%s)", numbers)
        contracts = firm.erp.rows("select contract_number from erp_inbound.contract where contract_number = any(%s)", numbers)
        expected = self.engagements * self.entries_per_engagement
        per_entry: dict[str, int] = {}
        for ev in events:
            per_entry[ev["source_ref"]] = per_entry.get(ev["source_ref"], 0) + 1
        wrong_amount = [ev for ev in events if ev["status"] != "ready" or ev["amount"] != ev["quantity"] * RATE]
        return {
            "contracts": len(contracts), "expected_contracts": self.engagements,
            "events": len(events), "expected_events": expected,
            "lost": expected - len(per_entry), "duplicated": sum(c - 1 for c in per_entry.values()),
            "wrong": len(wrong_amount),
            "costs": len([c for c in costs if c["status"] == "posted" and c["cost_amount"] == c["hours"] * COST]),
        }


def _retrying(write, on_error, attempts: int = 120) -> None:
    import time

    import psycopg

    for _attempt in range(attempts):
        try:
            write()
            return
        except psycopg.OperationalError as exc:
            if on_error:
                on_error(exc)
            time.sleep(1)
        except AssertionError:
            time.sleep(1)
    raise RuntimeError("the load could not be written")
