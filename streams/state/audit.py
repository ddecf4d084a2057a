"""The audit trail: a record of every row the sync writes to the ERP, the PSA and the CRM, with
what the row was before, what it is after, and the source change that caused it. No I/O.

Records are made where the processor diffs new outputs against the ledger of what was written, so
a write that changes nothing records nothing, and a replay (which derives against the kept ledger)
records nothing new. A batch that is done again after a crash derives the same changes of the same
rows again (its records' cause may differ: an engagement's cause is the latest change of the batch
that touched it, and the batch done again may be larger); the store keeps a record unless it has
the same id or the row's last record says the same change (``streams.sinks.audit``). A row's
``before`` is what the sync last wrote there, which is what the ERP holds, since the sync is the
only writer of these tables.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import msgspec

ERP_TABLE = {"schedule": "erp_inbound.billing_schedule", "event": "erp_inbound.billing_event",
             "cost": "erp_inbound.project_cost"}


@dataclass(frozen=True)
class Cause:
    """The source change behind a write: its database, LSN, transaction, commit time and row."""
    database: str
    lsn: int
    transaction: str | None = None
    committed_at: datetime | None = None
    ref: str | None = None  # the changed row: "<schema>.<table>:<key>"


@dataclass(frozen=True)
class AuditRecord:
    audit_id: str
    sink: str                  # erp, psa, crm
    table: str                 # the written table, schema-qualified
    key: str                   # the row's key there
    before: str | None         # the row as JSON; None: the row was not there
    after: str                 # the row as JSON
    contract_number: str | None
    trace_id: str | None
    database: str | None       # the cause; None for a replay's sweep
    lsn: int | None
    transaction: str | None
    committed_at: str | None   # ISO 8601
    source_ref: str | None = None  # the changed source row

    def encode(self) -> bytes:
        """One line of JSON: the fields, with the rows as JSON objects (``before_row``, ``after_row``)."""
        head = _ENCODE([self.audit_id, self.sink, self.table, self.key, self.contract_number, self.trace_id,
                        self.database, self.lsn, self.transaction, self.committed_at, self.source_ref])
        return b'{"f":' + head + b',"before_row":' + (self.before or "null").encode() + b',"after_row":' + \
            self.after.encode() + b"}"

    @classmethod
    def decode(cls, value: bytes) -> AuditRecord:
        doc = json.loads(value)
        (audit_id, sink, table, key, contract, trace, database, lsn, transaction, committed_at, ref) = doc["f"]
        before, after = doc["before_row"], doc["after_row"]
        return cls(audit_id, sink, table, key, json.dumps(before, separators=(",", ":")) if before is not None else None,
                   json.dumps(after, separators=(",", ":")), contract, trace, database, lsn, transaction, committed_at, ref)


_ENCODE = msgspec.json.Encoder().encode
PER_MESSAGE = 200  # records a q2c.audit message carries, a line each (well under Kafka's 1 MB)


def encode_many(records: list[AuditRecord]) -> list[bytes]:
    """The values of the messages that carry ``records``."""
    return [b"\n".join(r.encode() for r in records[i:i + PER_MESSAGE]) for i in range(0, len(records), PER_MESSAGE)]


def decode_many(value: bytes) -> list[AuditRecord]:
    return [AuditRecord.decode(line) for line in value.split(b"\n") if line.strip()]


def as_json(row: Any) -> str | None:
    """A row as the JSON the sinks' values make (models dumped as pydantic dumps them)."""
    if row is None:
        return None
    if hasattr(row, "model_dump_json"):
        return row.model_dump_json()
    if hasattr(row, "__dataclass_fields__"):
        row = asdict(row)
    return json.dumps(row, separators=(",", ":"), default=str)


def record(sink: str, table: str, key: str, before: Any, after: Any, cause: Cause | None,
           contract: str | None = None, trace_id: str | None = None, once: bool = False) -> AuditRecord | None:
    """The record of one write, or None when it writes nothing new (``after`` None or equal to
    ``before``). ``once``: a row the sink only ever creates (a PSA project), recorded once
    whichever change asked for it."""
    before_json, after_json = as_json(before), as_json(after)
    if after_json is None or before_json == after_json:
        return None
    identity = hashlib.sha256()
    for part in (table, key, before_json or "", after_json,
                 "" if once or cause is None else f"{cause.database}:{cause.lsn}"):
        identity.update(part.encode())
        identity.update(b"\0")
    if trace_id is None:
        trace_id = getattr(after, "trace_id", None) or (after.get("trace_id") if isinstance(after, dict) else None)
    return AuditRecord(
        audit_id=identity.hexdigest()[:32], sink=sink, table=table, key=key,
        before=before_json, after=after_json, contract_number=contract, trace_id=trace_id,
        database=cause.database if cause else None, lsn=cause.lsn if cause else None,
        transaction=cause.transaction if cause else None,
        committed_at=cause.committed_at.isoformat() if cause and cause.committed_at else None,
        source_ref=cause.ref if cause else None)


def latest(causes) -> Cause | None:
    """The cause of what a batch derived from several changes: the last committed of them."""
    causes = [c for c in causes if c is not None]
    return max(causes, key=lambda c: (c.committed_at is not None, c.committed_at or 0, c.lsn)) if causes else None
