"""When a contract is cancelled, and when a later revision brings it back (docs/choices.md).

Cancellation is prospective and dated by the source: what became billable at or before it is
owed and stays; what would become billable after it is held (``contract_cancelled``) for as long
as the cancellation is in force. A revision approved after the cancellation re-activates the
contract.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from streams.canonical.models import ExpenseItem, Quote
from streams.rules.pricing import Revision

MIN_TIME = datetime.min.replace(tzinfo=UTC)


def cancelled_at(quote: Quote) -> datetime:
    """When a cancelled quote was cancelled: the CRM's ``updated_at`` when it stamped the
    cancellation (a time after the approval); else the commit time at which capture saw it become
    cancelled; else, unknown, its approval (everything after it is held: visible, not billed)."""
    approved = quote.approved_at or MIN_TIME
    if quote.source_updated_at is not None and quote.source_updated_at > approved:
        return quote.source_updated_at
    return quote.status_since or approved


def cancellation_dated_by_source(quote: Quote) -> bool:
    """Whether the CRM's own columns date the cancellation (what ``q2c reconcile`` can see)."""
    return quote.source_updated_at is not None and quote.source_updated_at > (quote.approved_at or MIN_TIME)


def cancellations(revisions: Sequence[Revision]) -> list[datetime | None]:
    """For each approved revision, oldest first, the time its cancellation took effect, or None.

    A revision's cancellation counts when it came before the next revision's approval: a change
    order approved later re-activates the contract; a superseded quote cancelled afterwards
    cancels nothing."""
    found: list[datetime | None] = []
    for i, (quote, _) in enumerate(revisions):
        when = cancelled_at(quote) if quote.status == "cancelled" else None
        if when is not None and i + 1 < len(revisions):
            next_approved = revisions[i + 1][0].approved_at
            if next_approved is not None and next_approved <= when:
                when = None
        found.append(when)
    return found


def in_force(revisions: Sequence[Revision]) -> datetime | None:
    """When the contract was cancelled, if it is cancelled now (its current revision is)."""
    return cancellations(revisions)[-1] if revisions else None


def expense_approved_at(expense: ExpenseItem) -> datetime:
    """When an expense line was approved, as well as the sources tell: the PSA keeps no approval
    time, so the later of the line's ``updated_at`` and the commit time at which capture saw it
    become approved."""
    known = [t for t in (expense.source_updated_at, expense.status_since) if t is not None]
    return max(known) if known else MIN_TIME


def after(cancelled: datetime | None, when: datetime | None) -> bool:
    """Whether something that happened ``when`` (None: at an unknown, early time) came after a
    cancellation in force."""
    return cancelled is not None and (when or MIN_TIME) > cancelled
