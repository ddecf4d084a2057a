from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.rules.money import net_amount, split, tax_amount, to_cents

cents = st.decimals(min_value=D("-1000000"), max_value=D("1000000"), places=2, allow_nan=False, allow_infinity=False)


def test_net_amount_applies_both_discounts_and_rounds_once_at_the_end():
    # 3 × 33.33 × 0.9 × 0.95 = 85.48545 → 85.49 (rounding each step would give 85.48)
    assert net_amount(D("3"), D("33.33"), D("10"), D("5")) == D("85.49")


@pytest.mark.parametrize("exact, rounded", [("0.005", "0.01"), ("-0.005", "-0.01"), ("2.675", "2.68"), ("1.004", "1.00")])
def test_rounding_is_half_away_from_zero(exact, rounded):
    assert to_cents(D(exact)) == D(rounded)


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        to_cents(0.1)


def test_split_puts_the_remainder_cents_on_the_last_part():
    assert split(D("100.00"), 3) == [D("33.33"), D("33.33"), D("33.34")]
    assert split(D("0.02"), 3) == [D("0.00"), D("0.00"), D("0.02")]


@given(cents, st.integers(min_value=1, max_value=60))
def test_installments_sum_to_the_line(amount, parts):
    shares = split(amount, parts)
    assert sum(shares) == amount
    assert len(shares) == parts
    assert len(set(shares[:-1])) <= 1


def test_tax_amount_rounds_to_cents():
    assert tax_amount(D("2137.50"), D("20.000")) == D("427.50")
    assert tax_amount(D("10.05"), D("7.5")) == D("0.75")
