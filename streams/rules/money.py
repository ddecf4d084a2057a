"""Money arithmetic of RULES.md: exact decimals, rounded half away from zero to cents once."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def to_cents(amount: Decimal) -> Decimal:
    """Round to cents, half away from zero (Decimal's ROUND_HALF_UP rounds away from zero)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def net_amount(quantity: Decimal, unit_price: Decimal, line_discount_pct: Decimal, quote_discount_pct: Decimal) -> Decimal:
    """quantity × unit_price × (1 − line discount%) × (1 − quote discount%), rounded once at the end."""
    exact = quantity * unit_price * (1 - line_discount_pct / HUNDRED) * (1 - quote_discount_pct / HUNDRED)
    return to_cents(exact)


def unit_net_price(unit_price: Decimal, line_discount_pct: Decimal, quote_discount_pct: Decimal) -> Decimal:
    """The net price of one unit (an hour of a role): the same formula with quantity 1."""
    return net_amount(Decimal(1), unit_price, line_discount_pct, quote_discount_pct)


def split(amount: Decimal, parts: int) -> list[Decimal]:
    """Equal parts in cents; the remainder cents go on the last part. Sums exactly to ``amount``."""
    if parts < 1:
        raise ValueError("split needs at least one part")
    cents = int(to_cents(amount) / CENT)
    base = int(cents / parts)  # truncates toward zero, so negatives split the same way
    shares = [base] * parts
    shares[-1] += cents - base * parts
    return [Decimal(s) * CENT for s in shares]


def tax_amount(amount: Decimal, rate_pct: Decimal) -> Decimal:
    return to_cents(amount * rate_pct / HUNDRED)
