import pytest

from tests.sources import Delivery, Firm


@pytest.fixture(scope="session")
def firm(stack):
    f = Firm(stack.s)
    Delivery(f).tax("STD", "GB", "20.000")
    return f


@pytest.fixture(scope="session")
def psa(firm):
    return Delivery(firm)
