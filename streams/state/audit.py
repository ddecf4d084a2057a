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

ERP_TABLE = {"schedule": "erp_inbound.billing_schedule", "event": "erp_inbound.billing_event",
             "cost": "erp_inbound.project_cost"}


@dataclass(frozen=True)
class Cause:
    """The source change behind a write: its database, LSN, transaction and commit time."""
    database: str
    lsn: int
    transaction: str | None = None
    committed_at: datetime | None = None


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

    def encode(self) -> bytes:
        fields = asdict(self)
        del fields["before"], fields["after"]
        head = json.dumps(fields, separators=(",", ":"))[:-1]
        before = self.before if self.before is not None else "null"
        return f'{head},"before_row":{before},"after_row":{self.after}}}'.encode()

    @classmethod
    def decode(cls, value: bytes) -> "AuditRecord":
        doc = json.loads(value)
        before, after = doc.pop("before_row"), doc.pop("after_row")
        doc["before"] = json.dumps(before, separators=(",", ":")) if before is not None else None
        doc["after"] = json.dumps(after, separators=(",", ":"))
        return cls(**doc)


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
    where = None if once or cause is None else (cause.database, cause.lsn)
    identity = json.dumps([table, key, before_json, after_json, where])
    if trace_id is None:
        trace_id = getattr(after, "trace_id", None) or (after.get("trace_id") if isinstance(after, dict) else None)
    return AuditRecord(
        audit_id=hashlib.sha256(identity.encode()).hexdigest()[:32], sink=sink, table=table, key=key,
        before=before_json, after=after_json, contract_number=contract, trace_id=trace_id,
        database=cause.database if cause else None, lsn=cause.lsn if cause else None,
        transaction=cause.transaction if cause else None,
        committed_at=cause.committed_at.isoformat() if cause and cause.committed_at else None)


def latest(causes) -> Cause | None:
    """The cause of what a batch derived from several changes: the last committed of them."""
    causes = [c for c in causes if c is not None]
    return max(causes, key=lambda c: (c.committed_at is not None, c.committed_at or 0, c.lsn)) if causes else None
