"""One batch of source changes in, the rows the sinks must write out.

``Processor`` is the sync's core and does no I/O: it applies changes to the mirror, derives the
outputs of every engagement, invoice and account the batch touched (pure rules), and diffs them
against the ledger of what was written before, so only real changes reach the sinks. The ledger is
updated by ``commit`` only after the sinks succeeded: a crash in between re-derives and re-writes
the same rows (at-least-once, idempotent sinks).

Scaled out (``routes`` given), the processor of the worker reading the source topics routes each
touched engagement to the partition that derives it instead of deriving it (``streams.state.routing``);
that partition's worker derives it with ``engagement`` on its copy of the engagement's rows.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from streams.canonical.models import Canonical
from streams.capture.envelope import RowChange
from streams.capture.mapping import InvalidRow
from streams.capture.tables import EVENT_TYPE_OF_TABLE
from streams.rules.engagement import (
    Candidate,
    EngagementOutputs,
    EngagementView,
    ProjectProvision,
    Terms,
    assemble,
    assignments_by_resource,
    billing_event,
    derive,
    derive_head,
    derive_rows,
    expense_candidate,
    project_cost,
    reversed_cost,
    settle,
    time_candidate,
)
from streams.rules.receivable import AccountFinancials, account_financials, receivable
from streams.state.audit import ERP_TABLE, AuditRecord, Cause, latest, record
from streams.state.engagement_book import Books, EngagementBook
from streams.state.erp_batch import ErpBatch
from streams.state.keys import META_READERS, AccountKey, InvoiceKey
from streams.state.ledger import FIELD_OF_PART, Ledger, StoredOutputs
from streams.state.mirror import Applied, SourceMirror
from streams.state.routing import BundlePart, RouteBook
from streams.state.views import InvoicedEvents, account_invoices, engagement_view, invoice_inputs, recorded_view


@dataclass(frozen=True)
class Rejected:
    """A change that cannot be processed, with a reason a person understands."""
    change: RowChange | None
    reason: str
    error: str


@dataclass(frozen=True)
class CanonicalEvent:
    """One event for a canonical topic: a derived row, or a source entity (``model`` None when
    the source row was deleted), keyed by its engagement's contract number where it has one."""
    event_type: str
    key: str
    model: Canonical | None
    ref: str | None = None
    contract: str | None = None
    committed_at: datetime | None = None  # the source commit behind it, when known (latency to the warehouse)


@dataclass
class BatchResult:
    erp: ErpBatch = field(default_factory=ErpBatch)
    provisions: list[ProjectProvision] = field(default_factory=list)
    financials: list[AccountFinancials] = field(default_factory=list)
    canonical: list[CanonicalEvent] = field(default_factory=list)
    mirror_writes: dict[str, dict] = field(default_factory=dict)  # scaled out: the copies' table entries
    ledger_writes: dict[str, Any] = field(default_factory=dict)  # ledger rows: models or docs, None when gone
    bundles: list[BundlePart] = field(default_factory=list)  # scaled out: engagements to derive elsewhere
    route_writes: dict[str, int | None] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    applied: int = 0
    # source rows published by this batch with their engagement's contract: ref → contract
    published: dict[str, str] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)  # what the sinks' writes change, and why

    def note(self, written: AuditRecord | None) -> None:
        """Keep the audit record of a write (None: the write changes nothing)."""
        if written is not None:
            self.audit.append(written)


class Processor:
    def __init__(self, mirror: SourceMirror, ledger: Ledger | None = None,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date(),
                 routes: RouteBook | None = None, books: Books | None = None):
        self.mirror = mirror
        self.ledger = ledger if ledger is not None else Ledger()
        self.today = today
        self.routes = routes
        self.books = books if books is not None else Books()
        self._unsettled: set[str] = set()  # engagements derived since the last commit
        self._causes: dict[tuple[str, Any], Cause] = {}  # (invoice|account, id) → the batch's change behind it

    def process(self, changes: list[RowChange], derive_outputs: bool = True) -> BatchResult:
        """Apply ``changes``; derive what they touched unless ``derive_outputs`` is False (a
        replay rebuilds the mirror first and derives everything once, with ``sweep``)."""
        result = BatchResult()
        for contract in self._unsettled:  # a batch that was not committed: its books are ahead of the ledger
            self.books.drop(contract)
        self._unsettled.clear()
        engagements: dict[str, list[Applied]] = {}
        invoices: set[str] = set()
        accounts: set[int] = set()
        self._causes = {}
        for change in changes:
            try:
                applied = self.mirror.apply(change)
            except InvalidRow as exc:
                result.rejected.append(Rejected(change, "invalid_row", str(exc)))
                continue
            if applied is None:
                continue
            result.applied += 1
            if not derive_outputs:
                continue
            e, i, a = self.mirror.touched(applied)
            contract = self.mirror.engagement_of(applied, e)
            result.canonical.append(CanonicalEvent(
                EVENT_TYPE_OF_TABLE[applied.table_id], contract or applied.ref, applied.after, applied.ref, contract,
                applied.cause.committed_at if applied.cause else None))
            if contract is not None:
                result.published[applied.ref] = contract
            else:
                result.published.pop(applied.ref, None)
            for c in e:
                engagements.setdefault(c, []).append(applied)
            invoices |= i
            accounts |= a
            if applied.cause is not None:
                for what, ids in (("invoice", i), ("account", a)):
                    for one in ids:
                        self._causes[what, one] = latest([self._causes.get((what, one)), applied.cause])
        for contract in sorted(engagements):
            self._engagement_or_route(contract, result, applied=engagements[contract])
        for inv_no in sorted(invoices):
            self._invoice(inv_no, result)
        for account_id in sorted(accounts):
            self._account(account_id, result)
        return result

    def sweep(self, result: BatchResult | None = None) -> BatchResult:
        """Derive every engagement, invoice and account of the mirror against the ledger."""
        result = result or BatchResult()
        self._causes = {}
        for contract in sorted(self.mirror.contracts()):
            self._engagement_or_route(contract, result, whole=True)
        for invoice in sorted(i.inv_no for i in self.mirror.all("finance.ar_invoice_hdr")):
            self._invoice(invoice, result)
        for account_id in sorted(a.id for a in self.mirror.all("crm.account")):
            self._account(account_id, result)
        return result

    def ensure_readers(self) -> int:
        """Record what every engagement's rules read (``streams.state.readers``) when the mirror
        has no record of it (a table written by an earlier version), once; the number of
        engagements read."""
        if self.mirror.store.get(META_READERS) is not None:
            return 0
        contracts = sorted(self.mirror.contracts())
        for contract in contracts:
            recorded_view(self.mirror, contract)
        self.mirror.store.put(META_READERS, True)
        return len(contracts)

    def commit(self, result: BatchResult) -> None:
        """Record what the sinks wrote (call only after they succeeded): ``persist``, then
        ``settle``."""
        self.persist(result)
        self.settle()

    def persist(self, result: BatchResult) -> None:
        """The batch's ledger rows and what it routed, into the ledger and the route book (and so
        into their tables, when they are kept in tables)."""
        self.ledger.apply(result.ledger_writes)
        if self.routes is not None:
            self.routes.apply(result.route_writes)

    def settle(self) -> None:
        """The batch is committed: the books of the engagements it derived match the ledger."""
        self._unsettled.clear()

    def _engagement_or_route(self, contract: str, result: BatchResult, whole: bool = False,
                             applied: list[Applied] | None = None) -> None:
        if self.routes is None:
            self.engagement(contract, result, applied)
            return
        # an engagement this ledger derived before scaling out goes with what was written for it
        handed_over = self.ledger.rows_of(contract) if self.routes.sent(contract) is None else {}
        parts, writes = self.routes.route(self.mirror, contract, whole=whole, ledger=handed_over, applied=applied)
        result.bundles.extend(parts)
        result.route_writes.update(writes)
        if parts:
            result.ledger_writes.update({key: None for key in handed_over})

    def engagement(self, contract: str, result: BatchResult, applied: list[Applied] | None = None) -> None:
        """Derive one engagement and add what changed to ``result``: only the rows ``applied``
        touched when its book is current (``engagement_book``), else in full."""
        self._unsettled.add(contract)  # its book is right only once this batch is committed
        lookups: set[str] = set()  # what its rules ask the mirror for: they read it again when that changes
        with self.mirror.recording(lookups):
            found = self._incremental(contract, applied) if applied is not None else None
        if found is None:
            previous = self.ledger.outputs(contract)
            view, _ = recorded_view(self.mirror, contract)
            head = derive_head(view)
            if head is None:
                self.books.drop(contract)
                outputs = derive(view, previous)  # withdrawn (or never a contract)
            else:
                rows = derive_rows(view, head.terms)
                outputs = assemble(head, rows, previous)
                self.books.put(contract, EngagementBook.of(head, rows))
            changed = Ledger.changed(previous, outputs)
            linked_rows = _rows_to_link(view)
        else:
            previous, outputs, changed, linked_rows, head_view = found
            self.mirror.readers.add(contract, lookups, head_view)
        old = previous or EngagementOutputs()
        if outputs.contract is None and previous is None:
            return
        cause = latest(a.cause for a in applied) if applied else None
        committed = cause.committed_at if cause else None
        note = result.note
        if outputs.contract != old.contract and outputs.contract is not None:
            result.erp.contracts.append(outputs.contract)
            result.canonical.append(CanonicalEvent("contract", contract, outputs.contract, contract=contract, committed_at=committed))
            note(record("erp", "erp_inbound.contract", contract, old.contract, outputs.contract, cause, contract))
        for part, rows_out, event_type in (("schedule", result.erp.schedule, "schedule_item"),
                                           ("event", result.erp.events, "billing_event"),
                                           ("cost", result.erp.costs, "project_cost")):
            was = getattr(old, FIELD_OF_PART[part])
            for key, model in changed[part].items():
                if model is not None:  # None: no longer derived; the sinks keep what they have
                    rows_out.append(model)
                    result.canonical.append(CanonicalEvent(event_type, contract, model, contract=contract, committed_at=committed))
                    note(record("erp", ERP_TABLE[part], f"{contract}/{key}" if part == "schedule" else key,
                                was.get(key), model, cause, contract))
        if outputs.provision is not None:
            result.provisions.append(outputs.provision)
            note(record("psa", "psa.project", outputs.provision.crm_quote_number, None, outputs.provision, cause, contract,
                        trace_id=outputs.contract.trace_id if outputs.contract else None, once=True))
        linked_before = self.ledger.linked(contract, (ref for ref, _ in linked_rows), every=found is None)
        linked = self._link(contract, linked_rows, linked_before, result)
        result.ledger_writes.update(Ledger.engagement_rows(contract, previous, outputs, changed, linked_before, linked))

    def _incremental(self, contract: str, applied: list[Applied]
                     ) -> tuple[StoredOutputs, EngagementOutputs, dict[str, dict], list[tuple[str, Canonical]], EngagementView] | None:
        """(what was written, outputs, changed rows, rows to link, the view of its head) derived
        from the engagement's book and the rows ``applied`` touched, reading only the ledger rows they
        touch; None when it must be derived in full (no book, new terms)."""
        book = self.books.get(contract)
        previous = self.ledger.stored(contract) if book is not None else None
        if previous is None or previous.contract is None:
            return None
        view = engagement_view(self.mirror, contract, rows=False)
        invoiced = InvoicedEvents(self.mirror)
        head = derive_head(view, invoiced)
        if head is None or head.terms != book.head.terms:
            return None
        pid = view.project.id if view.project is not None else None
        entries, expenses, named = _rows_changed(self.mirror, applied, book)
        linked_rows = _rows_to_link(view)
        touched = set(named) | set(head.schedule_events) | set(book.head.schedule_events)
        costs = self._entries(book, head.terms, pid, entries, previous, touched, linked_rows)
        touched |= self._expenses(book, head.terms, pid, expenses, touched, linked_rows)
        events: dict[str, Any] = {}
        for event_id in sorted(touched):
            desired = head.schedule_events.get(event_id)
            candidate = book.candidate(event_id) if desired is None else None
            if candidate is not None:
                desired = billing_event(head.terms, candidate, book.hold(event_id))
            for key, event in settle(event_id, desired, previous.events.get(event_id), invoiced).items():
                if previous.events.get(key) != event:
                    events[key] = event
        schedule: dict[str, Any] = {k: i for k, i in head.outputs.schedule.items() if previous.schedule.get(k) != i}
        schedule.update({k: None for k in previous.schedule.keys() - head.outputs.schedule.keys()})
        book.head = head
        outputs = EngagementOutputs(contract=head.outputs.contract, provision=head.outputs.provision)
        return previous, outputs, {"schedule": schedule, "event": events, "cost": costs}, linked_rows, view

    def _entries(self, book: EngagementBook, terms: Terms, pid: int | None, entry_ids: set[int], previous: StoredOutputs,
                 touched: set[str], linked_rows: list) -> dict[str, Any]:
        """Derive the time entries ``entry_ids`` again into the book: their candidates (the event
        ids touched, and those whose budget hold changed, are added to ``touched``) and their
        costs (returned: the rows that differ from ``previous``)."""
        assignments = assignments_by_resource(self.mirror.find("psa.assignment", "by_project", pid)) if pid is not None else {}
        costs: dict[str, Any] = {}
        removed: list[Candidate] = []
        added: list[Candidate] = []
        for entry_id in entry_ids:
            entry = self.mirror.get("psa.timesheet_entry", entry_id)
            if entry is not None and entry.project_id != pid:
                entry = None  # moved to another project: it left this engagement
            if entry is not None:
                linked_rows.append((f"psa.timesheet_entry:{entry_id}", entry))
            resource = self.mirror.get("psa.resource", entry.resource_id) if entry is not None else None
            new = (time_candidate(terms, entry, assignments.get(entry.resource_id, ()), resource)
                   if entry is not None and terms.bills_time else None)
            touched |= _swap(book.time, entry_id, new, removed, added)
            cost = project_cost(terms, entry, resource) if entry is not None else None
            old_cost_id = book.cost_of.pop(entry_id, None)
            if cost is not None:
                book.cost_of[entry_id] = cost.cost_event_id
                if previous.costs.get(cost.cost_event_id) != cost:
                    costs[cost.cost_event_id] = cost
            if old_cost_id and old_cost_id != (cost.cost_event_id if cost else None) and old_cost_id in previous.costs:
                before = previous.costs[old_cost_id]
                if reversed_cost(before) != before:
                    costs[old_cost_id] = reversed_cost(before)
            book.place(entry_id, entry.resource_id if entry is not None and entry.status == "approved" else None)
        touched |= book.budget.change(removed, added)
        return costs

    def _expenses(self, book: EngagementBook, terms: Terms, pid: int | None, expense_ids: set[int],
                  touched: set[str], linked_rows: list) -> set[str]:
        """Derive the expense lines ``expense_ids`` again into the book; the event ids touched."""
        removed: list[Candidate] = []
        added: list[Candidate] = []
        found: set[str] = set()
        for expense_id in expense_ids:
            expense = self.mirror.get("psa.expense_line", expense_id)
            if expense is not None and expense.project_id != pid:
                expense = None
            if expense is not None:
                linked_rows.append((f"psa.expense_line:{expense_id}", expense))
            new = expense_candidate(terms, expense) if expense is not None and pid is not None else None
            found |= _swap(book.expenses, expense_id, new, removed, added)
        return found | book.cap.change(removed, added)

    def _link(self, contract: str, rows: list[tuple[str, Canonical]], linked_before: set[str], result: BatchResult) -> list[str]:
        """Source rows of the engagement that were published before it could be resolved (a time
        entry before its project, a project before its quote) are published again with the
        engagement's contract number, so downstream attribution does not depend on arrival order.
        A row this batch published with that contract already (a new time entry of a known
        engagement) is not published twice."""
        for ref, model in rows:
            if ref not in linked_before and result.published.get(ref) != contract:
                table_id = ref.split(":", 1)[0]
                result.canonical.append(CanonicalEvent(EVENT_TYPE_OF_TABLE[table_id], contract, model, ref, contract))
        return sorted(ref for ref, _ in rows)

    def _invoice(self, inv_no: str, result: BatchResult) -> None:
        key = InvoiceKey(inv_no).text
        invoice, payments, contract, account_number = invoice_inputs(self.mirror, inv_no)
        if invoice is None:
            return  # a deleted invoice header: the ERP keeps the receivable it had (finance never deletes issued invoices)
        row = receivable(invoice, payments, contract, account_number)
        doc = row.model_dump(mode="json")
        before = self.ledger.doc(key)
        if before != doc:
            result.erp.receivables.append(row)
            cause = self._causes.get(("invoice", inv_no))
            result.canonical.append(CanonicalEvent("receivable", contract or inv_no, row, ref=f"finance.ar_invoice_hdr:{inv_no}",
                                                   contract=contract, committed_at=cause.committed_at if cause else None))
            result.ledger_writes[key] = doc
            result.note(record("erp", "erp_inbound.receivable", inv_no, before, doc, cause, contract))

    def _account(self, account_id: int, result: BatchResult) -> None:
        if self.mirror.get("crm.account", account_id) is None:
            return
        key = AccountKey(account_id).text
        invoices = account_invoices(self.mirror, account_id)
        if not invoices and key not in self.ledger:
            return
        financials = account_financials(account_id, invoices, self.today())
        doc = json.loads(json.dumps(financials.__dict__, default=str))
        before = self.ledger.doc(key)
        if before != doc:
            result.financials.append(financials)
            result.ledger_writes[key] = doc
            result.note(record("crm", "crm.account_financials", str(account_id), before, doc,
                               self._causes.get(("account", account_id))))


def _rows_to_link(view: EngagementView) -> list[tuple[str, Canonical]]:
    """(ref, row) of every source row a view holds that belongs to the engagement."""
    rows: list[tuple[str, Canonical]] = [(f"crm.quote:{q.id}", q) for q in view.quotes]
    rows += [(f"crm.quote_line:{line.id}", line) for lines in view.lines.values() for line in lines]
    if view.project is not None:
        rows.append((f"psa.project:{view.project.id}", view.project))
    rows += [(f"psa.milestone:{m.id}", m) for m in view.milestones]
    rows += [(f"psa.assignment:{a.id}", a) for a in view.assignments]
    rows += [(f"psa.timesheet_entry:{t.id}", t) for t in view.time_entries]
    rows += [(f"psa.expense_line:{x.id}", x) for x in view.expenses]
    return rows


def _rows_changed(mirror: SourceMirror, applied: list[Applied], book: EngagementBook) -> tuple[set[int], set[int], set[str]]:
    """(time entry ids, expense ids, billing event ids named by invoice lines) whose derivation
    the applied changes may alter; a person's or an assignment's change reaches every approved
    entry of that person in the engagement."""
    entries: set[int] = set()
    expenses: set[int] = set()
    named: set[str] = set()
    for change in applied:
        for model in (change.before, change.after):
            if model is None:
                continue
            t = change.table_id
            if t == "psa.timesheet_entry":
                entries.add(model.id)
            elif t == "psa.expense_line":
                expenses.add(model.id)
            elif t == "psa.resource":
                entries |= book.entries_of_resource.get(model.id, set())
            elif t == "psa.assignment":
                entries |= book.entries_of_resource.get(model.resource_id, set())
            elif t == "finance.ar_invoice_line":
                named.add((model.src_ref or "").strip())
                mirror.get("finance.ar_invoice_hdr", model.inv_no)  # read in full with the line: its arrival reaches the engagement
            elif t == "finance.ar_invoice_hdr":
                named.update((line.src_ref or "").strip() for line in mirror.find("finance.ar_invoice_line", "by_invoice", model.inv_no))
    named.discard("")
    named |= {event_id[:-len(":REV")] for event_id in named if event_id.endswith(":REV")}  # a reversal is settled with its event
    return entries, expenses, named


def _swap(rows: dict[int, Candidate], row_id: int, new: Candidate | None,
          removed: list[Candidate], added: list[Candidate]) -> set[str]:
    """Put a row's new candidate (None: it has none now) in place of its old one, noting both
    for the running total; the event ids this touches."""
    old = rows.get(row_id)
    if new == old:
        return set()
    rows.pop(row_id, None)
    if new is not None:
        rows[row_id] = new
        added.append(new)
    if old is not None:
        removed.append(old)
    return {c.event_id for c in (old, new) if c is not None}
