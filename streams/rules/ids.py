"""Deterministic identities: the same source state always yields the same id, so replay writes
nothing new."""
from __future__ import annotations

import hashlib
import uuid

TRACE_NAMESPACE = uuid.UUID("6f1c2b1e-8d0a-4c55-9a57-2f3e0d9b7a11")


def trace_id(contract_number: str) -> str:
    """One id per engagement, the same on every replay and on every worker."""
    return str(uuid.uuid5(TRACE_NAMESPACE, f"engagement:{contract_number}"))


def source_ref(schema: str, table: str, key: object) -> str:
    """``<schema>.<table>:<primary key>``, e.g. ``psa.timesheet_entry:812``."""
    return f"{schema}.{table}:{key}"


def state_digest(*parts: object) -> str:
    """A short digest of the source state an event was made from."""
    text = "|".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def milestone_event_id(contract_number: str, milestone_code: str) -> str:
    return f"MS:{contract_number}:{milestone_code}"


def period_event_id(contract_number: str, schedule_key: str) -> str:
    """Fixed-fee installments and retainer months: the schedule key names the line and month."""
    return f"{schedule_key.split(':', 1)[0]}:{contract_number}:{schedule_key.split(':', 1)[1]}"


def time_event_id(contract_number: str, entry_id: int, digest: str) -> str:
    return f"TE:{contract_number}:{entry_id}:{digest}"


def expense_event_id(contract_number: str, expense_id: int, digest: str) -> str:
    return f"EX:{contract_number}:{expense_id}:{digest}"


def cost_event_id(contract_number: str, entry_id: int, digest: str) -> str:
    return f"PC:{contract_number}:{entry_id}:{digest}"


def reversal_id(billing_event_id: str) -> str:
    return f"{billing_event_id}:REV"
