"""Integration tests run against the real embedded stack: PostgreSQL, a KRaft broker, Kafka
Connect with Debezium, the Faust worker and Prometheus, started once per session under a fresh
``Q2C_HOME`` on ports of their own (so a developer's running stack is left alone)."""
from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path

import pytest

# Below Linux's ephemeral range (32768-60999), where an outgoing connection could take them.
# Q2C_TEST_PORT_OFFSET moves them all, to run the suite beside a benchmark's stack.
_OFFSET = int(os.environ.get("Q2C_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {name: str(port + _OFFSET) for name, port in {
    "Q2C_PG_PORT": 25532, "Q2C_KAFKA_PORT": 29192, "Q2C_CONTROLLER_PORT": 29193,
    "Q2C_CONNECT_PORT": 28183, "Q2C_METRICS_PORT": 28100, "Q2C_WORKER_WEB_PORT": 26166,
    "Q2C_PROMETHEUS_PORT": 29190, "Q2C_KAFKA_JMX_PORT": 29194, "Q2C_CONNECT_JMX_PORT": 28184,
}.items()}


@pytest.fixture(scope="session")
def stack():
    from streams.config import Settings
    from streams.stack.manager import Stack

    home = Path(os.environ.get("Q2C_TEST_HOME") or tempfile.mkdtemp(prefix="q2c-test-"))
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
        the_stack.down()
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
    from tests.sources import Delivery, Firm

    f = Firm(stack.s)
    Delivery(f).tax("STD", "GB", "20.000")
    return f


@pytest.fixture(scope="session")
def psa(firm):
    from tests.sources import Delivery

    return Delivery(firm)
