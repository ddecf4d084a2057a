"""The keys of the sync's state tables: one type per kind of entry, and the text it is kept under.

The tables are ordered by the text of their keys, and a range of keys is a prefix of that text:
an engagement's ledger rows, its events, the rows under one value of one index. Each key type
gives its text (``text``), the prefix of the ranges it belongs to (``prefix``), and reads its text
back (``parse``). Components are escaped (``%`` and ``|``), so a contract number, an event id or
an indexed value may hold any character without reaching into another key's range: contract
``Q-1`` and contract ``Q-1|event`` have ranges of their own.

Mirror rows are kept under their source ref (``<table>:<key>``, as ``TableMapping.ref`` gives
it): the ref is the row's name across the sync (a billing event's ``source_ref``). No I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

SEP = "|"

EngagementPart = Literal["schedule", "event", "cost", "linked"]
ENGAGEMENT_PARTS: tuple[EngagementPart, ...] = ("schedule", "event", "cost", "linked")


def escape(component: str) -> str:
    """A component as it is kept in a key: ``%`` and the separator escaped."""
    if "%" not in component and SEP not in component:
        return component
    return component.replace("%", "%25").replace(SEP, "%7C")


def unescape(component: str) -> str:
    return unquote(component) if "%" in component else component  # every literal % was escaped


class BadKey(ValueError):
    """A key's text that no key type of the table reads."""


# --- the ledger (``q2c-ledger``) ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EngagementKey:
    """One row of what was written for an engagement: ``eng:<contract>`` (its contract) or
    ``eng:<contract>|<part>|<item>`` (a schedule item, billing event, cost event, or a source row
    published with the contract number: ``linked``)."""
    contract: str
    part: EngagementPart | None = None
    item: str | None = None

    @property
    def text(self) -> str:
        head = f"eng:{escape(self.contract)}"
        return head if self.part is None else f"{head}{SEP}{self.part}{SEP}{escape(self.item or '')}"

    @staticmethod
    def prefix(contract: str, part: EngagementPart | None = None) -> str:
        """The range of the engagement's rows besides its contract (of one part, when given)."""
        head = f"eng:{escape(contract)}{SEP}"
        return head if part is None else f"{head}{part}{SEP}"

    @classmethod
    def parse(cls, text: str) -> EngagementKey:
        if not text.startswith("eng:"):
            raise BadKey(f"not an engagement's ledger key: {text!r}")
        contract, sep, rest = text[4:].partition(SEP)
        if not sep:
            return cls(unescape(contract))
        part, _, item = rest.partition(SEP)
        if part not in ENGAGEMENT_PARTS:
            raise BadKey(f"no part {part!r} in an engagement's ledger key: {text!r}")
        return cls(unescape(contract), part, unescape(item))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class InvoiceKey:
    """The receivable written for one invoice: ``inv:<invoice number>``."""
    inv_no: str

    @property
    def text(self) -> str:
        return f"inv:{escape(self.inv_no)}"


@dataclass(frozen=True, slots=True)
class AccountKey:
    """The financials written for one client account: ``acct:<account id>``."""
    account_id: int

    @property
    def text(self) -> str:
        return f"acct:{self.account_id}"


LedgerKey = EngagementKey | InvoiceKey | AccountKey


def ledger_key(text: str) -> LedgerKey:
    """The key a ledger entry's text names."""
    if text.startswith("eng:"):
        return EngagementKey.parse(text)
    if text.startswith("inv:"):
        return InvoiceKey(unescape(text[4:]))
    if text.startswith("acct:"):
        return AccountKey(int(text[5:]))
    raise BadKey(f"not a ledger key: {text!r}")


# --- the mirror (``q2c-mirror``) ------------------------------------------------------------------

INDEX_PREFIX = "ix|"
META_PREFIX = "meta|"
META_INDEXES = "meta|indexes"  # the version of the set of indexes the entries were made for
META_READERS = "meta|readers"  # set once every engagement's reads are recorded (``Readers``)


@dataclass(frozen=True, slots=True)
class IndexKey:
    """One row under one value of one index: ``ix|<table>|<index>|<value>|<ref>`` (the entry
    itself holds nothing). A tuple value is kept as its parts joined by ``,`` (escaped)."""
    table_id: str
    index: str
    value: Any
    ref: str

    @property
    def text(self) -> str:
        return f"{IndexKey.prefix(self.table_id, self.index, self.value)}{escape(self.ref)}"

    @staticmethod
    def prefix(table_id: str, index: str, value: Any) -> str:
        """The range of every row under ``value``."""
        return f"{INDEX_PREFIX}{table_id}{SEP}{index}{SEP}{_index_value(value)}{SEP}"

    @staticmethod
    def ref_in(text: str, prefix: str) -> str:
        """The ref of an entry found under ``prefix``."""
        return unescape(text[len(prefix):])


def _index_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_index_value(v) for v in value)
    return escape(str(value)).replace(",", "%2C")


# --- an engagement's copy and what was sent for it (``q2c-engagement-rows``, ``q2c-routes``) -------

@dataclass(frozen=True, slots=True)
class EngagementRowKey:
    """A source row of one engagement: in a scaled-out worker's copy of the engagement, and in the
    router's book of what that copy was sent: ``<contract>|<ref>``."""
    contract: str
    ref: str

    @property
    def text(self) -> str:
        return f"{escape(self.contract)}{SEP}{escape(self.ref)}"

    @staticmethod
    def prefix(contract: str) -> str:
        return f"{escape(contract)}{SEP}"

    @classmethod
    def parse(cls, text: str) -> EngagementRowKey:
        contract, sep, ref = text.partition(SEP)
        if not sep:
            raise BadKey(f"not an engagement row's key: {text!r}")
        return cls(unescape(contract), unescape(ref))


def contract_of(text: str) -> str:
    """The engagement of an engagement row's key or of an engagement's ledger key (the tables a
    scaled-out worker partitions by engagement)."""
    return EngagementKey.parse(text).contract if text.startswith("eng:") else EngagementRowKey.parse(text).contract


# --- source transactions still open (``q2c-held``) ------------------------------------------------

@dataclass(frozen=True, slots=True)
class HeldChangeKey:
    """A source record held with its open transaction, by where it was read:
    ``change/<topic>/<partition>/<offset>``."""
    topic: str
    partition: int
    offset: int

    @property
    def text(self) -> str:
        return f"change/{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class TransactionEndKey:
    """The END marker of an open source transaction: ``end/<source>/<transaction id>``."""
    source: str
    tx: str

    PREFIX = "end/"

    @property
    def text(self) -> str:
        return f"{self.PREFIX}{self.source}/{self.tx}"


@dataclass(frozen=True, slots=True)
class ClosedKey:
    """One batch's applied transaction ids, in order: ``closed/<sequence, 20 digits>``."""
    seq: int

    PREFIX = "closed/"

    @property
    def text(self) -> str:
        return f"{self.PREFIX}{self.seq:020d}"

    @classmethod
    def parse(cls, text: str) -> ClosedKey:
        if not text.startswith(cls.PREFIX):
            raise BadKey(f"not a closed-transactions key: {text!r}")
        return cls(int(text[len(cls.PREFIX):]))


# --- which engagements read what (in the mirror's table) -------------------------------------------

READER_PREFIX = "rd|"
READS_PREFIX = "reads|"


@dataclass(frozen=True, slots=True)
class ReaderKey:
    """An engagement that read under one lookup (a ref asked for, an index value or a table
    scanned): ``rd|<lookup>|<contract>`` (the entry itself holds nothing)."""
    lookup: str
    contract: str

    @property
    def text(self) -> str:
        return f"{ReaderKey.prefix(self.lookup)}{escape(self.contract)}"

    @staticmethod
    def prefix(lookup: str) -> str:
        """The range of every engagement that read under ``lookup``."""
        return f"{READER_PREFIX}{escape(lookup)}{SEP}"

    @staticmethod
    def contract_in(text: str, prefix: str) -> str:
        return unescape(text[len(prefix):])


@dataclass(frozen=True, slots=True)
class ReadsKey:
    """The lookups of one engagement's reads, as a list: ``reads|<contract>``."""
    contract: str

    @property
    def text(self) -> str:
        return f"{READS_PREFIX}{escape(self.contract)}"
