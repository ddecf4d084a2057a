"""The source mirror: the latest state of every captured source row, as canonical models.

Faust has no stream joins, so the sync joins through state: each change is applied here (an older
change never overwrites a newer one: rows are guarded by their LSN), and the engagement rules read
what they need through the indexes below. The mirror keeps its rows and its index entries in a
``Store`` (``streams.state.store``): on the heap, or in the worker's changelog-backed RocksDB table
read on demand. The mirror itself does no I/O.
"""
from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.canonical.models import Canonical, Client, Invoice, Project, Quote
from streams.capture.envelope import UNAVAILABLE, RowChange
from streams.capture.mapping import TableMapping
from streams.capture.tables import all_mappings
from streams.state.audit import Cause
from streams.state.keys import INDEX_PREFIX, META_INDEXES, META_PREFIX, READER_PREFIX, READS_PREFIX, IndexKey
from streams.state.readers import Readers
from streams.state.store import MemoryStore, Store


def contract_of_event_ref(src_ref: str | None) -> str | None:
    """The contract number inside a billing event id (``MS:<contract>:<code>``, ``TE:<contract>:..``)."""
    if not src_ref:
        return None
    parts = src_ref.strip().split(":")
    return parts[1] if len(parts) >= 3 and parts[0] in ("MS", "FF", "RT", "TE", "EX") else None


def _norm(text: str | None) -> str | None:
    return text.strip().upper() if text and text.strip() else None


# The indexes some read asks for (``find``), and no more: an index entry is a table write and a
# changelog record whenever a row's value of it changes.
INDEXES: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {
    "crm.quote": [("by_number", lambda q: q.quote_number), ("by_amends", lambda q: q.amends_quote_id),
                  ("by_number_norm", lambda q: _norm(q.quote_number))],
    "crm.quote_line": [("by_quote", lambda line: line.quote_id)],
    "crm.account": [("by_number_norm", lambda a: _norm(a.account_number))],
    "psa.project": [("by_quote_number", lambda p: p.crm_quote_number)],
    "psa.milestone": [("by_project", lambda m: m.project_id)],
    "psa.assignment": [("by_project", lambda a: a.project_id)],
    "psa.timesheet_entry": [("by_project", lambda t: t.project_id)],
    "psa.expense_line": [("by_project", lambda e: e.project_id)],
    "finance.ar_customer": [("by_account_norm", lambda c: _norm(c.crm_account_no))],
    "finance.ar_invoice_hdr": [("by_customer", lambda i: i.cust_no), ("by_contract_ref", lambda i: _norm(i.contract_ref))],
    "finance.ar_invoice_line": [("by_invoice", lambda line: line.inv_no),
                                ("by_event", lambda line: line.src_ref.strip() if line.src_ref and line.src_ref.strip() else None),
                                ("by_src_contract", lambda line: contract_of_event_ref(line.src_ref))],
    "finance.ar_receipt": [("by_invoice", lambda r: r.inv_no)],
}


INVOICE_TABLES = ("finance.ar_invoice_hdr", "finance.ar_invoice_line", "finance.ar_receipt")


def _position_of_read(known: int | None, before: Canonical | None, after: Canonical | None) -> int:
    """The position a backfill's read (``RowChange.current``) leaves the row at. The read has no
    LSN but is current where the stream puts it, so it is applied whatever the row's position.
    The row's next change has an LSN past the commit of the change the mirror holds, so the read
    keeps that position; or one past it when the read changes the row (a change the capture
    missed, itself past that commit; or a mapping since corrected), so that whatever ships rows
    by their position (``streams.state.routing``) sees it changed."""
    if known is None:
        return 0
    return known + 1 if before != after else known


def _dated(after: Canonical, before: Canonical | None, change: RowChange) -> Canonical:
    """Stamp ``status_since`` on rows whose models keep it: the source's commit time of the change
    that gave the row its standing, kept while the standing stays; unknown for a snapshot read."""
    if "status_since" not in type(after).model_fields:
        return after
    if before is not None and before.standing() == after.standing():
        since = before.status_since
    else:
        since = change.committed_at if change.op in ("c", "u") else None
    return after.model_copy(update={"status_since": since})


INDEX_VERSION = str(zlib.crc32(",".join(f"{t}.{name}" for t, ix in INDEXES.items() for name, _ in ix).encode()))


class MirrorRow(NamedTuple):
    """One source row as the mirror holds it: its table, the position (LSN) of the change that
    set it, and the row (None once deleted: the position still guards against older changes)."""
    table_id: str
    position: int
    model: Canonical | None

    def persisted(self) -> dict:
        """What the durable table keeps (JSON-safe)."""
        return {"t": self.table_id, "pos": self.position,
                "row": self.model.model_dump(mode="json") if self.model is not None else None}


ROW_FORMAT = b"\x01"  # a row: the format byte, table id, 0x1F, position, 0x1F, the model's JSON


class MirrorCodec:
    """The mirror's store entries as its table keeps them (bytes): a row as its table id, position
    and the model's own JSON (pydantic encodes and validates it in one pass, without an
    intermediate document), an index entry as one byte, the index version as JSON. Documents in
    the shape ``MirrorRow.persisted`` gives (a table written by an earlier version, JSON) are
    read too."""

    uncached = (INDEX_PREFIX, READER_PREFIX)  # only ever scanned

    def __init__(self, mappings: dict[str, TableMapping] | None = None):
        self.mappings = mappings or all_mappings()

    def encode(self, key: str, value: Any) -> bytes:
        if isinstance(value, MirrorRow):
            body = value.model.model_dump_json().encode() if value.model is not None else b""
            return b"%s%s\x1f%d\x1f%s" % (ROW_FORMAT, value.table_id.encode(), value.position, body)
        if key.startswith((INDEX_PREFIX, READER_PREFIX)):
            return b"1"
        return json.dumps(value).encode()

    def decode(self, key: str, doc: Any) -> Any:
        if isinstance(doc, bytes) and doc[:1] == ROW_FORMAT:
            table_id, position, body = doc[1:].split(b"\x1f", 2)
            t = table_id.decode()
            return MirrorRow(t, int(position), self.mappings[t].model.model_validate_json(body) if body else None)
        if key.startswith((INDEX_PREFIX, READER_PREFIX)):
            return True
        if isinstance(doc, (bytes, str)):
            doc = json.loads(doc)
        if key.startswith((META_PREFIX, READS_PREFIX)):
            return doc
        row = doc.get("row")
        model = self.mappings[doc["t"]].model.model_validate(row) if row is not None else None
        return MirrorRow(doc["t"], doc["pos"], model)


@dataclass(frozen=True)
class Applied:
    """A change that altered the mirror: what the row was and what it is now."""
    ref: str
    table_id: str
    before: Canonical | None
    after: Canonical | None
    position: int
    cause: Cause | None = None  # the source change (for the audit trail); None for a copy's rows


class RefLists:
    """The refs found under a scan prefix lately (an index value's rows, a table's rows), the least
    recently used dropped past ``size`` refs in all; the mirror drops a list when it writes under
    its prefix. A batch of a thousand time entries of one project asks for that project's quote
    a thousand times."""

    def __init__(self, size: int = 200_000):
        self.size, self.held = size, 0
        self._lists: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def get(self, prefix: str) -> tuple[str, ...] | None:
        refs = self._lists.get(prefix)
        if refs is not None:
            self._lists.move_to_end(prefix)
        return refs

    def put(self, prefix: str, refs: tuple[str, ...]) -> None:
        self.drop(prefix)
        self._lists[prefix] = refs
        self.held += len(refs)
        while self.held > self.size and len(self._lists) > 1:
            self.held -= len(self._lists.popitem(last=False)[1])

    def drop(self, prefix: str) -> None:
        refs = self._lists.pop(prefix, None)
        if refs is not None:
            self.held -= len(refs)


class SourceMirror:
    """Rows by ref (``<table>:<key>``) and the rules' indexes, both as entries of ``store``."""

    def __init__(self, mappings: dict[str, TableMapping] | None = None, store: Store | None = None):
        self.mappings = mappings or all_mappings()
        self.store: Store = store if store is not None else MemoryStore()
        self.readers = Readers(self.store)  # which engagements read what
        self._found = RefLists()
        self._reads: set[str] | None = None  # while ``recording``: the refs of every row read
        self._lookups: set[str] | None = None  # and what was asked for: refs, prefixes scanned

    # --- writing -----------------------------------------------------------------------------

    def apply(self, change: RowChange) -> Applied | None:
        """Apply one change; None when it is stale (older than what the mirror holds) or unmapped."""
        mapping = self.mappings.get(change.table_id)
        if mapping is None:
            return None
        ref = mapping.ref(change.key)
        held: MirrorRow | None = self.store.get(ref)
        known = held.position if held is not None else None
        if change.op == "t":  # a tombstone follows its delete: keep the delete's position
            position = known or 0
        elif change.current:
            position = None  # set below, once the row is known
        elif known is not None and change.position < known:
            return None
        else:
            position = change.position
        before = held.model if held is not None else None
        if change.deleted:
            after = None
        else:
            row = dict(change.row or {})
            if any(v == UNAVAILABLE for v in row.values()):  # unchanged TOAST: keep the old value
                previous = before.model_dump() if before is not None else {}
                row = {k: (previous.get(k) if v == UNAVAILABLE else v) for k, v in row.items()}
            after = _dated(mapping.to_model(row), before, change)
        if position is None:
            position = _position_of_read(known, before, after)
        self._store(ref, mapping.table_id, before, after, position)
        # Even an unchanged row counts as applied: a change delivered again after a crash must
        # re-derive (and re-write) what depends on it.
        return Applied(ref, mapping.table_id, before, after, position,
                       Cause(change.source, change.position, change.transaction, change.committed_at, ref))

    def load(self, ref: str, persisted: dict) -> None:
        """Set one row as ``MirrorRow.persisted`` gave it (a copy of an engagement's rows)."""
        mapping = self.mappings[persisted["t"]]
        row = persisted.get("row")
        self._store(ref, mapping.table_id, self.row(ref), mapping.model.model_validate(row) if row is not None else None,
                    persisted["pos"])

    def persisted(self, ref: str) -> dict:
        """One row as the durable table keeps it."""
        return self.store.get(ref).persisted()

    def forget(self, ref: str) -> None:
        """Drop a row and its position (a copy of an engagement's rows drops one that left it)."""
        held: MirrorRow | None = self.store.get(ref)
        if held is not None:
            self._index(ref, held.table_id, held.model, None)
            self.store.delete(ref)
            self._found.drop(f"{held.table_id}:")

    def _store(self, ref: str, table_id: str, before: Canonical | None, after: Canonical | None, position: int) -> None:
        self.store.put(ref, MirrorRow(table_id, position, after))
        if (before is None) != (after is None):
            self._found.drop(f"{table_id}:")
        self._index(ref, table_id, before, after)

    def _index(self, ref: str, table_id: str, before: Canonical | None, after: Canonical | None) -> None:
        """Move ``ref``'s index entries from ``before``'s values to ``after``'s (only those that
        differ: an approval moves none). A None value is not indexed."""
        for name, fn in INDEXES.get(table_id, ()):
            old = fn(before) if before is not None else None
            new = fn(after) if after is not None else None
            if old == new:
                continue
            if old is not None:
                self.store.delete(IndexKey(table_id, name, old, ref).text)
                self._found.drop(IndexKey.prefix(table_id, name, old))
            if new is not None:
                self.store.put(IndexKey(table_id, name, new, ref).text, True)
                self._found.drop(IndexKey.prefix(table_id, name, new))

    def ensure_indexes(self) -> int:
        """Build the index entries again when the store's were made for other indexes (or none:
        a table written before indexes were kept in it); the number of rows indexed."""
        if self.store.get(META_INDEXES) == INDEX_VERSION:
            return 0
        for key, _ in list(self.store.scan(INDEX_PREFIX)):
            self.store.delete(key)
        self._found = RefLists(self._found.size)
        count = 0
        for key, held in self.store.scan(""):
            if isinstance(held, MirrorRow) and held.model is not None:
                self._index(key, held.table_id, None, held.model)
                count += 1
        self.store.put(META_INDEXES, INDEX_VERSION)
        return count

    # --- reading -----------------------------------------------------------------------------

    def row(self, ref: str) -> Canonical | None:
        held: MirrorRow | None = self.store.get(ref)
        return held.model if held is not None else None

    def position(self, ref: str) -> int | None:
        held: MirrorRow | None = self.store.get(ref)
        return held.position if held is not None else None

    def get(self, table_id: str, *key: Any) -> Any:
        ref = f"{table_id}:" + "/".join(map(str, key))
        row = self.row(ref)
        if self._reads is not None and row is not None:
            self._reads.add(ref)
        if self._lookups is not None:
            self._lookups.add(ref)
        return row

    def find(self, table_id: str, index: str, value: Any) -> list[Any]:
        return self._rows(self._indexed(table_id, index, value))

    def any(self, table_id: str, index: str, value: Any) -> bool:
        """Whether ``find`` would find a row, without reading the rows."""
        return bool(self._indexed(table_id, index, value))

    def _indexed(self, table_id: str, index: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        prefix = IndexKey.prefix(table_id, index, value)
        if self._lookups is not None:
            self._lookups.add(prefix)
        refs = self._found.get(prefix)
        if refs is None:
            refs = tuple(sorted(IndexKey.ref_in(key, prefix) for key, _ in self.store.scan(prefix)))
            self._found.put(prefix, refs)
        return refs

    def all(self, table_id: str) -> list[Any]:
        prefix = f"{table_id}:"
        if self._lookups is not None:
            self._lookups.add(prefix)
        refs = self._found.get(prefix)
        if refs is None:
            refs = tuple(sorted(ref for ref, held in self.store.scan(prefix) if held.model is not None))
            self._found.put(prefix, refs)
        return self._rows(refs)

    def _rows(self, refs: Iterable[str]) -> list[Any]:
        found = []
        for ref in refs:
            row = self.row(ref)
            if row is not None:
                found.append(row)
                if self._reads is not None:
                    self._reads.add(ref)
        return found

    @contextmanager
    def recording(self, lookups: set[str] | None = None) -> Iterator[set[str]]:
        """Collect the ref of every row read through ``get``, ``find`` and ``all`` meanwhile:
        a mirror holding only those rows answers the same reads the same way. ``lookups`` also
        collects what the reads asked for: each ref asked for (there or not) and each prefix
        scanned (an index value, a table): a change to a row under one of them is what can
        change what the reads return (``lookups_of``)."""
        self._reads, self._lookups = (reads := set()), lookups
        try:
            yield reads
        finally:
            self._reads = self._lookups = None

    # --- engagement identity -------------------------------------------------------------------

    def root_quote(self, quote: Quote) -> Quote | None:
        """Follow ``amends_quote_id`` to the original quote; None while a link has not arrived."""
        seen = set()
        while quote.amends_quote_id is not None:
            if quote.id in seen:
                return None  # a cycle in source data: never resolvable
            seen.add(quote.id)
            parent = self.get("crm.quote", quote.amends_quote_id)
            if parent is None:
                return None
            quote = parent
        return quote

    def contract_of_quote(self, quote: Quote | None) -> str | None:
        root = self.root_quote(quote) if quote is not None else None
        return root.quote_number if root is not None else None

    def contract_of_quote_number(self, number: str | None) -> str | None:
        quotes = self.find("crm.quote", "by_number_norm", _norm(number)) if number else []
        return self.contract_of_quote(quotes[0]) if quotes else None

    def engagement_quotes(self, contract_number: str) -> list[Quote]:
        """The original quote and every change order below it."""
        roots = [q for q in self.find("crm.quote", "by_number", contract_number) if q.amends_quote_id is None]
        if not roots:
            return []
        found, todo = [], [roots[0]]
        while todo:
            quote = todo.pop()
            found.append(quote)
            todo.extend(self.find("crm.quote", "by_amends", quote.id))
        return sorted(found, key=lambda q: (q.revision, q.id))

    def engagement_project(self, contract_number: str) -> Project | None:
        candidates = []
        for quote in self.engagement_quotes(contract_number):
            candidates.extend(self.find("psa.project", "by_quote_number", quote.quote_number))
        # the firm's own project wins over one the sync provisioned, then the oldest
        return sorted(candidates, key=lambda p: (p.created_by == "integration", p.id))[0] if candidates else None

    def contract_of_invoice(self, invoice: Invoice | None) -> str | None:
        """RULES.md: contract_ref first, then any line's src_ref naming an event of an engagement."""
        if invoice is None:
            return None
        contract = self.contract_of_quote_number(invoice.contract_ref)
        if contract:
            return contract
        for line in self.find("finance.ar_invoice_line", "by_invoice", invoice.inv_no):
            candidate = contract_of_event_ref(line.src_ref)
            if candidate and self.engagement_quotes(candidate):
                return candidate
        return None

    def client_of_invoice(self, invoice: Invoice) -> Client | None:
        customer = self.get("finance.ar_customer", invoice.cust_no)
        if customer is None or not customer.crm_account_no:
            return None
        accounts = self.find("crm.account", "by_number_norm", _norm(customer.crm_account_no))
        return accounts[0] if accounts else None

    def contracts(self) -> set[str]:
        return {q.quote_number for q in self.all("crm.quote") if q.amends_quote_id is None}

    # --- what a change touches -----------------------------------------------------------------

    def lookups_of(self, applied: Applied) -> set[str]:
        """The lookups under which a read finds the row, before or after the change: its ref,
        its table, and each value of its indexes."""
        t = applied.table_id
        found = {applied.ref, f"{t}:"}
        for model in (applied.before, applied.after):
            for name, fn in INDEXES.get(t, ()) if model is not None else ():
                value = fn(model)
                if value is not None:
                    found.add(IndexKey.prefix(t, name, value))
        return found

    def engagement_of(self, applied: Applied, touched: set[str]) -> str | None:
        """The engagement a source row is published under, when it belongs to one: the one
        engagement it touches (``touched``); for an invoice's rows, the engagement of the invoice
        and of the events its lines name; none for reference data (``TableMapping.shared``)."""
        t = applied.table_id
        if self.mappings[t].shared:
            return None
        if t not in INVOICE_TABLES:
            return next(iter(touched)) if len(touched) == 1 else None
        found: set[str] = set()
        for model in (applied.before, applied.after):
            if model is None:
                continue
            if t == "finance.ar_invoice_line":
                found.add(contract_of_event_ref(model.src_ref) or "")
            found.add(self.contract_of_invoice(self.get("finance.ar_invoice_hdr", model.inv_no)) or "")
            found.update(contract_of_event_ref(line.src_ref) or ""
                         for line in self.find("finance.ar_invoice_line", "by_invoice", model.inv_no))
        found.discard("")
        return next(iter(found)) if len(found) == 1 else None

    def touched(self, applied: Applied) -> tuple[set[str], set[str], set[int]]:
        """(engagements, invoices, accounts) whose derived rows may change because of ``applied``.
        Engagements: those whose rules last asked for the row (``Readers``), and the one a quote
        names (an engagement that was never derived has read nothing)."""
        engagements = self.readers.of(self.lookups_of(applied))
        invoices: set[str] = set()
        accounts: set[int] = set()
        t = applied.table_id
        for model in (applied.before, applied.after):
            if model is None:
                continue
            if t == "crm.quote":
                contract = self.contract_of_quote(model)
                engagements.add(contract or "")
                accounts.add(model.account_id)
                # an invoice that arrived before the quote could not be matched: match it now
                invoices.update(i.inv_no for i in self.find("finance.ar_invoice_hdr", "by_contract_ref", _norm(model.quote_number)))
                if contract:
                    invoices.update(line.inv_no for line in self.find("finance.ar_invoice_line", "by_src_contract", contract))
            elif t == "crm.account":
                accounts.add(model.id)
                for customer in self.find("finance.ar_customer", "by_account_norm", _norm(model.account_number)):
                    invoices.update(i.inv_no for i in self.find("finance.ar_invoice_hdr", "by_customer", customer.cust_no))
            elif t == "finance.ar_customer":
                invoices.update(i.inv_no for i in self.find("finance.ar_invoice_hdr", "by_customer", model.cust_no))
            elif t in INVOICE_TABLES:
                invoices.add(model.inv_no)
        for inv_no in list(invoices):
            invoice = self.get("finance.ar_invoice_hdr", inv_no)
            if invoice is not None:
                client = self.client_of_invoice(invoice)
                if client is not None:
                    accounts.add(client.id)
        for contract in list(engagements):
            quotes = self.engagement_quotes(contract) if contract else []
            accounts.update(q.account_id for q in quotes)
        engagements.discard("")
        return engagements, invoices, accounts
