"""Tax by code, country and date (finance.gl_tax_rate)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from streams.canonical.models import TaxRate


def rate_on(rates: Iterable[TaxRate], tax_code: str, country: str, on: date) -> Decimal | None:
    """The rate valid on ``on`` for (code, country); the latest ``valid_from`` wins an overlap."""
    valid = [
        r for r in rates
        if r.tax_cd == tax_code and r.country_cd == country
        and r.valid_from <= on and (r.valid_to is None or on <= r.valid_to)
    ]
    return max(valid, key=lambda r: r.valid_from).rate_pct if valid else None
