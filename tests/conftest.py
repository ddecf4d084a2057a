"""Integration tests run against the real embedded stack: PostgreSQL, a KRaft broker, Kafka
Connect with Debezium, the Faust worker and Prometheus, started once per session under a fresh
``Q2C_HOME`` on ports of their own (so a developer's running stack is left alone)."""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from streams.testing.stacks import TEST_PORTS, discard, throwaway_home  # the stacks' ports, shared with bench/


@pytest.fixture(scope="session")
def stack():
    from streams.config import Settings
    from streams.stack.manager import Stack

    kept = os.environ.get("Q2C_TEST_HOME")  # given: kept after the run, to look at
    home = Path(kept) if kept else throwaway_home("q2c-test-")
    # a source transaction left incomplete is applied after 10 s here (120 s by default)
    env = {**TEST_PORTS, "Q2C_HOME": str(home), "Q2C_TRANSACTION_WAIT_S": "10"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = Settings()
    the_stack = Stack(settings)
    started = time.monotonic()
    try:
        the_stack.up(say=lambda line: print(line, flush=True))
        print(f"stack up in {time.monotonic() - started:.1f}s under {home}", flush=True)
        yield the_stack
    finally:
        the_stack.down() if kept else discard(the_stack)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_ids = itertools.count(int(time.time()) % 1000000)


@pytest.fixture
def ids():
    """Fresh primary keys for each test, so tests share the stack without colliding: each call
    gives a multiple of 1000, and ``n + k`` (k < 1000) is free for the test's other rows."""
    return lambda: next(_ids) * 1000


@pytest.fixture(scope="session")
def firm(stack):
    """The client firm's databases on the stack, with the standard tax rate every engagement uses."""
    from streams.testing.firm import Delivery, Firm

    f = Firm(stack.s)
    Delivery(f).tax("STD", "GB", "20.000")
    return f


@pytest.fixture(scope="session")
def psa(firm):
    from streams.testing.firm import Delivery

    return Delivery(firm)
