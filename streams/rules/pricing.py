"""Which approved revision prices what, and the net rates and caps it gives."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from streams.canonical.models import Quote, QuoteLine
from streams.rules.money import net_amount, to_cents, unit_net_price

Revision = tuple[Quote, list[QuoteLine]]


def was_approved(quote: Quote) -> bool:
    """Approved now, or approved once and later superseded or cancelled."""
    return quote.status in ("approved", "superseded") or (quote.status == "cancelled" and quote.approved_at is not None)


def approved_revisions(quotes: Sequence[Quote], lines_of: dict[int, list[QuoteLine]]) -> list[Revision]:
    """The engagement's approved revisions, oldest first."""
    return [(q, lines_of.get(q.id, [])) for q in sorted(quotes, key=lambda q: (q.revision, q.id)) if was_approved(q)]


def revision_in_force(revisions: Sequence[Revision], at: datetime | None) -> Revision:
    """The latest revision approved at or before ``at`` (the first one when none was yet)."""
    if at is None:
        return revisions[-1]
    in_force = revisions[0]
    for revision in revisions:
        approved_at = revision[0].approved_at
        if approved_at is None or approved_at <= at:
            in_force = revision
    return in_force


def role_rate(revision: Revision, role_code: str) -> tuple[Decimal, str] | None:
    """(net hourly rate, tax code) of ``role_code`` in a revision, or None if it has no such line."""
    quote, lines = revision
    for line in sorted(lines, key=lambda item: item.line_no):
        if line.line_type == "role_rate" and line.role_code == role_code:
            return unit_net_price(line.unit_price, line.discount_pct, quote.discount_pct), line.tax_code
    return None


def rate_for(revisions: Sequence[Revision], role_code: str, approved_at: datetime | None) -> tuple[Decimal, str] | None:
    """The rate in the revision in force when the work was approved; if that revision lacks the
    role, the first later revision that has it (a change order that adds a missing rate releases
    the hold under the same event id)."""
    start = revisions.index(revision_in_force(revisions, approved_at))
    for revision in revisions[start:]:
        found = role_rate(revision, role_code)
        if found:
            return found
    return None


def not_to_exceed(revision: Revision) -> Decimal:
    """Sum of the role_rate lines' net amounts: the T&M not-to-exceed."""
    quote, lines = revision
    return sum(
        (net_amount(line.quantity, line.unit_price, line.discount_pct, quote.discount_pct)
         for line in lines if line.line_type == "role_rate"),
        Decimal("0.00"),
    )


def expense_cap(revision: Revision) -> Decimal | None:
    """The engagement's cap on billable expenses, or None when it has no expense_allowance line."""
    quote, lines = revision
    # A cap is a limit, not a price: the quote's discounts do not lower it.
    caps = [to_cents(line.quantity * line.unit_price) for line in lines if line.line_type == "expense_allowance"]
    return sum(caps, Decimal("0.00")) if caps else None
