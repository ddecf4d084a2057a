"""A simulated professional-services firm: what its people do to the CRM, the PSA and the legacy
finance system, day by day. Pure: it decides, ``streams.demo.run`` writes.

Each simulated day the firm's users act as in ``docs/RULES.md``: sales quote engagements of all
four commercial models and get them approved or rejected; change orders amend approved ones;
project managers staff the projects the sync provisioned; consultants log daily time and
expenses, which their managers approve the next day; clients accept milestones; finance opens
each month's fiscal period, invoices from the ERP's billing queue and books receipts. What the
firm cannot know without looking (the projects the sync made, the queue in the ERP) it is told
before each day (``Observed``). One seed, one firm: the same seed and observations give the same
actions."""
from __future__ import annotations

import random
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

MODELS = ("time_and_materials", "fixed_fee", "milestone", "retainer")
ROLES = {"PM": ("180", "95"), "ARCH": ("210", "110"), "CONS": ("150", "80"), "DEV": ("130", "70")}  # rate, cost
CLIENTS = (("GB", "GBP", "UK01", "20.000"), ("DE", "EUR", "DE01", "19.000"), ("US", "USD", "US01", "0.000"))
CATEGORIES = ("travel", "lodging", "meals", "software")


@dataclass(frozen=True)
class Action:
    """One unit of work of a user, in one transaction of one database: what it is, for the
    progress display, and its statements."""
    database: str
    what: str  # a kind, counted in the summary: "quote", "approval", "time entry", ...
    statements: tuple[tuple[str, tuple], ...]


@dataclass(frozen=True)
class ReadyEvent:
    """A billing event the ERP holds as ``ready`` (what a finance clerk invoices)."""
    billing_event_id: str
    contract_number: str
    event_type: str
    amount: Decimal
    currency: str


@dataclass
class Observed:
    """What the firm sees before a day: the sync's projects and milestones, and the ERP's queue."""
    projects: dict[str, int] = field(default_factory=dict)          # quote number -> psa.project id
    milestones: dict[int, list[str]] = field(default_factory=dict)  # project id -> codes still to accept
    ready: list[ReadyEvent] = field(default_factory=list)


@dataclass
class Engagement:
    quote_id: int
    number: str           # the original quote's number: the contract number
    account: int
    model: str
    start: date
    end: date
    roles: list[str]
    milestones: list[tuple[str, date]]
    status: str = "draft"  # draft, in_review, approved, rejected
    revision: int = 1
    latest_quote: int = 0
    staffed: list[tuple[int, str]] = field(default_factory=list)  # (person, role)
    project: int | None = None


@dataclass
class Ids:
    """The next free key of each kind; ``streams.demo.run`` starts them past what the databases hold."""
    row: int = 1
    customer: int = 1
    invoice: int = 1
    receipt: int = 1

    def take(self) -> int:
        self.row += 1
        return self.row - 1


class SimulatedFirm:
    def __init__(self, seed: int, size: int, start: date, ids: Ids | None = None):
        self.random = random.Random(seed)
        self.size = max(1, size)
        self.today = start
        self.ids = ids or Ids()
        self.accounts: list[tuple[int, str, str, str]] = []   # (id, number, currency, customer no)
        self.people: list[tuple[int, str]] = []               # (id, role)
        self.engagements: list[Engagement] = []
        self.pending_time: list[int] = []                     # entries submitted, approved next day
        self.pending_expenses: list[int] = []
        self.invoiced: set[str] = set()
        self.unpaid: list[tuple[str, str, Decimal, str, date]] = []  # (invoice, customer, gross, currency, due)

    # --- the first day ------------------------------------------------------------------------

    def setup(self) -> list[Action]:
        """Tax rates, the fiscal periods around the start, the firm's people and its clients."""
        out = [Action("finance", "tax rate", tuple(
            ("INSERT INTO finance.gl_tax_rate (tax_cd, country_cd, rate_pct, valid_from) VALUES ('STD', %s, %s, '2000-01-01')"
             " ON CONFLICT DO NOTHING", (country, rate)) for country, _, _, rate in CLIENTS))]
        first = self.today.replace(day=1)
        previous = (first - timedelta(days=1)).replace(day=1)
        out += [self._period(previous, "C"), self._period(first, "O")]
        for _ in range(max(4, 3 * self.size)):
            out.append(self._person())
        for _ in range(self.size):
            out += self._client()
        return out

    def _period(self, month: date, status: str) -> Action:
        last = month.replace(day=monthrange(month.year, month.month)[1])
        return Action("finance", "fiscal period", ((
            "INSERT INTO finance.gl_period (period_cd, start_dt, end_dt, status_cd, last_upd_ts)"
            " VALUES (%s, %s, %s, %s, localtimestamp) ON CONFLICT (period_cd) DO UPDATE"
            " SET status_cd = excluded.status_cd, last_upd_ts = excluded.last_upd_ts",
            (month.strftime("%Y%m"), month, last, status)),))

    def _person(self) -> Action:
        pid = self.ids.take()
        role = self.random.choice(list(ROLES))
        self.people.append((pid, role))
        return Action("psa", "person", ((
            "INSERT INTO psa.resource (id, employee_no, full_name, email, role_code, home_region, legal_entity,"
            " cost_rate, cost_currency) VALUES (%s, %s, %s, %s, %s, 'EMEA', 'UK01', %s, 'GBP')",
            (pid, f"E{pid}", f"Consultant {pid}", f"e{pid}@firm.example", role, ROLES[role][1])),))

    def _client(self) -> list[Action]:
        aid = self.ids.take()
        country, currency, entity, _ = self.random.choice(CLIENTS)
        number = f"ACC-{aid:06d}"
        customer = f"D{self.ids.customer:09d}"
        self.ids.customer += 1
        self.accounts.append((aid, number, currency, customer))
        # clerks type the CRM account number as they like: padded, lower-cased, now and then not at all
        typed = self.random.choice([number, f" {number.lower()} ", number.lower(), number, None])
        return [
            Action("crm", "client", (
                ("INSERT INTO crm.account (id, account_number, name, billing_country, currency, legal_entity, owner_email)"
                 " VALUES (%s, %s, %s, %s, %s, %s, 'sales@firm.example')", (aid, number, f"Client {aid}", country, currency, entity)),
                ("INSERT INTO crm.opportunity (id, account_id, name, stage) VALUES (%s, %s, 'Programme', 'closed_won')", (aid, aid)))),
            Action("finance", "customer", ((
                "INSERT INTO finance.ar_customer (cust_no, cust_name, crm_account_no, country_cd, curr_cd, entity_cd, status_cd,"
                " last_upd_ts) VALUES (%s, %s, %s, %s, %s, %s, 'A', localtimestamp)",
                (customer, f"CLIENT {aid}", typed, country, currency, entity)),)),
        ]

    def _account(self, account: int) -> tuple[int, str, str, str]:
        return next(a for a in self.accounts if a[0] == account)

    # --- every day ----------------------------------------------------------------------------

    def day(self, seen: Observed) -> list[Action]:
        """What the firm's users do today, then the calendar moves on a day."""
        today, out = self.today, []
        if today.day == 1:
            out.append(self._period(today, "O"))
            out.append(self._period((today - timedelta(days=1)).replace(day=1), "C"))
        out += self._sales(today)
        for engagement in self.engagements:
            if engagement.status == "approved" and engagement.project is None and engagement.number in seen.projects:
                engagement.project = seen.projects[engagement.number]
                out += self._staff(engagement)
        if today.weekday() < 5:
            out += self._approvals()
            out += self._delivery(today)
            out += self._acceptances(seen)
        if today.weekday() == 4:
            out += self._invoices(today, seen.ready)
        out += self._receipts(today)
        self.today = today + timedelta(days=1)
        return out

    def _sales(self, today: date) -> list[Action]:
        out = []
        for engagement in self.engagements:
            if engagement.status == "draft":
                engagement.status = "in_review"
                out.append(Action("crm", "quote in review", (
                    ("UPDATE crm.quote SET status = 'in_review', updated_at = now() WHERE id = %s", (engagement.quote_id,)),)))
            elif engagement.status == "in_review":
                # the first of each model is won, so that each is seen in the ERP; later, some are lost
                won = self.engagements.index(engagement) < len(MODELS) or self.random.random() < 0.85
                engagement.status = "approved" if won else "rejected"
                out.append(Action("crm", "approval" if engagement.status == "approved" else "rejection", ((
                    "UPDATE crm.quote SET status = %s, approved_at = CASE WHEN %s = 'approved' THEN now() END,"
                    " approved_by = CASE WHEN %s = 'approved' THEN 'director@firm.example' END, updated_at = now() WHERE id = %s",
                    (engagement.status, engagement.status, engagement.status, engagement.quote_id)),)))
            elif (engagement.status == "approved" and engagement.model in ("time_and_materials", "milestone")
                  and engagement.revision < 3 and self.random.random() < 0.02):
                out.append(self._change_order(engagement))
        if not self.engagements:  # the first day: a quote each client, and one of each model at least
            for i in range(max(len(self.accounts), len(MODELS))):
                aid, _, currency, _ = self.accounts[i % len(self.accounts)]
                out += self._quote(aid, currency, today)
            return out
        for aid, _, currency, _ in self.accounts:
            if self.random.random() < 0.04:
                out += self._quote(aid, currency, today)
        return out

    def _quote(self, account: int, currency: str, today: date) -> list[Action]:
        qid = self.ids.take()
        model = MODELS[len(self.engagements) % len(MODELS)] if len(self.engagements) < len(MODELS) else self.random.choice(MODELS)
        start = today.replace(day=1)
        months = self.random.randint(3, 9)
        end = (start + timedelta(days=31 * months)).replace(day=1) - timedelta(days=1)
        roles = self.random.sample(list(ROLES), 2)
        milestones = [(f"M{i}", start + timedelta(days=30 * i)) for i in range(1, self.random.randint(2, 4) + 1)]
        engagement = Engagement(qid, f"Q-D{qid}", account, model, start, end, roles, milestones, latest_quote=qid)
        self.engagements.append(engagement)
        discount = self.random.choice(["0", "0", "5", "10"])
        return [Action("crm", "quote", (
            ("INSERT INTO crm.quote (id, quote_number, opportunity_id, account_id, status, commercial_model, currency,"
             " start_date, end_date, discount_pct, total_amount) VALUES (%s, %s, %s, %s, 'draft', %s, %s, %s, %s, %s, 0)",
             (qid, engagement.number, account, account, model, currency, start, end, discount)),
            *self._lines(qid, engagement, months)))]

    def _lines(self, qid: int, engagement: Engagement, months: int, uplift: Decimal = Decimal(1)) -> list[tuple[str, tuple]]:
        sql = ("INSERT INTO crm.quote_line (id, quote_id, line_no, line_type, service_code, role_code, quantity, unit_price,"
               " milestone_code, milestone_due) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
        lines: list[tuple] = []
        if engagement.model == "time_and_materials":
            for role in engagement.roles:
                rate = (Decimal(ROLES[role][0]) * uplift).quantize(Decimal("0.01"))
                lines.append(("role_rate", "IMPL", role, 40 * months, rate, None, None))
            lines.append(("expense_allowance", "IMPL", None, 1, 500 * months, None, None))
        elif engagement.model == "fixed_fee":
            lines.append(("fixed_fee", "ADVISORY", None, 1, 12000 * months, None, None))
        elif engagement.model == "milestone":
            for code, due in engagement.milestones:
                lines.append(("milestone", "IMPL", None, 1, (Decimal(15000) * uplift).quantize(Decimal("0.01")), code, due))
        else:
            lines.append(("retainer_fee", "MANAGED", None, months, 4000, None, None))
        return [(sql, (self.ids.take(), qid, no, kind, service, role, qty, price, code, due))
                for no, (kind, service, role, qty, price, code, due) in enumerate(lines, 1)]

    def _change_order(self, engagement: Engagement) -> Action:
        """A change order: the next revision, rates up 5 % (or milestones dearer), approved with the
        quote it amends superseded in the same transaction, as the CRM does."""
        qid = self.ids.take()
        engagement.revision += 1
        months = max(1, (engagement.end.year - engagement.start.year) * 12 + engagement.end.month - engagement.start.month + 1)
        amended, engagement.latest_quote = engagement.latest_quote, qid
        return Action("crm", "change order", (
            ("INSERT INTO crm.quote (id, quote_number, opportunity_id, account_id, revision, amends_quote_id, status,"
             " commercial_model, currency, start_date, end_date, total_amount, approved_at, approved_by)"
             " SELECT %s, %s, opportunity_id, account_id, %s, id, 'approved', commercial_model, currency, start_date, end_date,"
             " 0, now(), 'director@firm.example' FROM crm.quote WHERE id = %s",
             (qid, f"{engagement.number}-R{engagement.revision}", engagement.revision, amended)),
            *self._lines(qid, engagement, months, uplift=Decimal("1.05")),
            ("UPDATE crm.quote SET status = 'superseded', updated_at = now() WHERE id = %s", (amended,))))

    def _staff(self, engagement: Engagement) -> list[Action]:
        out = []
        team = self.random.sample(self.people, min(len(self.people), self.random.randint(1, 3)))
        for person, default_role in team:
            role = default_role
            if engagement.model == "time_and_materials":  # people bill at the roles the quote rates
                role = engagement.roles[len(engagement.staffed) % len(engagement.roles)]
            engagement.staffed.append((person, role))
            out.append(Action("psa", "assignment", ((
                "INSERT INTO psa.assignment (id, project_id, resource_id, role_code, planned_hours, start_date, end_date)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (self.ids.take(), engagement.project, person, role, 400, engagement.start, engagement.end)),)))
        return out

    def _delivery(self, today: date) -> list[Action]:
        out = []
        for engagement in self.engagements:
            if engagement.project is None or engagement.status != "approved" or not engagement.start <= today <= engagement.end:
                continue
            for person, _ in engagement.staffed:
                tid = self.ids.take()
                hours = self.random.choice(["4", "6", "7.5", "8", "8"])
                self.pending_time.append(tid)
                out.append(Action("psa", "time entry", ((
                    "INSERT INTO psa.timesheet_entry (id, resource_id, project_id, work_date, hours, billable, status, description)"
                    " VALUES (%s, %s, %s, %s, %s, %s, 'submitted', 'delivery')",
                    (tid, person, engagement.project, today, hours, self.random.random() < 0.9)),)))
                if engagement.model == "time_and_materials" and self.random.random() < 0.1:  # within its allowance
                    eid = self.ids.take()
                    currency = self._account(engagement.account)[2]
                    self.pending_expenses.append(eid)
                    out.append(Action("psa", "expense", ((
                        "INSERT INTO psa.expense_line (id, resource_id, project_id, expense_date, category, amount, currency,"
                        " status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'submitted')",
                        (eid, person, engagement.project, today, self.random.choice(CATEGORIES),
                         Decimal(self.random.randint(2000, 40000)) / 100, currency)),)))
        return out

    def _approvals(self) -> list[Action]:
        """Yesterday's time and expenses, approved (a few rejected) by the managers."""
        out = []
        for tid in self.pending_time:
            status = "approved" if self.random.random() < 0.95 else "rejected"
            out.append(Action("psa", "time approval", ((
                "UPDATE psa.timesheet_entry SET status = %s, approved_at = CASE WHEN %s = 'approved' THEN now() END,"
                " approved_by = 'manager@firm.example', updated_at = now() WHERE id = %s", (status, status, tid)),)))
        for eid in self.pending_expenses:
            out.append(Action("psa", "expense approval", ((
                "UPDATE psa.expense_line SET status = 'approved', updated_at = now() WHERE id = %s", (eid,)),)))
        self.pending_time, self.pending_expenses = [], []
        return out

    def _acceptances(self, seen: Observed) -> list[Action]:
        """Clients accept a milestone of a project now and then."""
        out = []
        for engagement in self.engagements:
            codes = seen.milestones.get(engagement.project or -1, [])
            if codes and self.random.random() < 0.15:
                code = codes[0]
                out.append(Action("psa", "milestone accepted", ((
                    "UPDATE psa.milestone SET status = 'accepted', completed_at = coalesce(completed_at, now()),"
                    " accepted_at = now(), accepted_by = 'client@client.example', updated_at = now()"
                    " WHERE project_id = %s AND milestone_code = %s", (engagement.project, code)),)))
        return out

    def _invoices(self, today: date, ready: list[ReadyEvent]) -> list[Action]:
        """On Fridays a clerk invoices each engagement's ready events, one invoice each."""
        by_contract: dict[str, list[ReadyEvent]] = {}
        for event in ready:
            if event.billing_event_id not in self.invoiced and event.amount > 0:
                by_contract.setdefault(event.contract_number, []).append(event)
        out = []
        customers = {e.number: self._account(e.account) for e in self.engagements}
        for contract, events in sorted(by_contract.items()):
            if contract not in customers:
                continue  # not this firm's engagement
            _, _, currency, customer = customers[contract]
            events = [e for e in events if e.currency == currency][:40]
            if not events:
                continue
            number = f"DINV{self.ids.invoice:08d}"
            self.ids.invoice += 1
            net = sum((e.amount for e in events), Decimal(0))
            typed = self.random.choice([contract, contract, contract.lower(), f" {contract} ", ""])
            due = today + timedelta(days=30)
            self.invoiced.update(e.billing_event_id for e in events)
            self.unpaid.append((number, customer, net, currency, due))
            out.append(Action("finance", "invoice", (
                ("INSERT INTO finance.ar_invoice_hdr (inv_no, cust_no, contract_ref, inv_dt, due_dt, curr_cd, net_amt, tax_amt,"
                 " gross_amt, status_cd, entity_cd, last_upd_ts) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, 'IS', 'UK01', localtimestamp)",
                 (number, customer, typed or None, today, due, currency, net, net)),
                *(("INSERT INTO finance.ar_invoice_line (inv_no, line_no, src_type, src_ref, descr, qty, unit_prc, net_amt, tax_cd)"
                   " VALUES (%s, %s, %s, %s, %s, 1, %s, %s, 'STD')",
                   (number, no, SOURCE_TYPES.get(e.event_type, "TE"), e.billing_event_id, e.event_type, e.amount, e.amount))
                  for no, e in enumerate(events, 1)))))
        return out

    def _receipts(self, today: date) -> list[Action]:
        """Clients pay: most within their terms, some part now and the rest later."""
        out, still = [], []
        for number, customer, gross, currency, due in self.unpaid:
            if self.random.random() < 0.12 or today > due + timedelta(days=15):
                partly = self.random.random() < 0.1
                amount = (gross / 2).quantize(Decimal("0.01")) if partly else gross
                out.append(Action("finance", "receipt", (
                    ("INSERT INTO finance.ar_receipt (rcpt_no, inv_no, cust_no, rcpt_dt, amt, curr_cd, method_cd, last_upd_ts)"
                     " VALUES (%s, %s, %s, %s, %s, %s, 'WIRE', localtimestamp)",
                     (f"DRC{self.ids.receipt:09d}", number, customer, today, amount, currency)),
                    ("UPDATE finance.ar_invoice_hdr SET status_cd = %s, last_upd_ts = localtimestamp WHERE inv_no = %s",
                     ("PP" if partly else "PD", number)))))
                self.ids.receipt += 1
                if partly:
                    still.append((number, customer, gross - amount, currency, due))
            else:
                still.append((number, customer, gross, currency, due))
        self.unpaid = still
        return out


SOURCE_TYPES = {"time": "TE", "expense": "EX", "milestone": "MS", "fixed_fee": "FF", "retainer": "RT"}
