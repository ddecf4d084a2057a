"""The stacks the tests and the benchmarks start: their ports, apart from a development stack's,
and their homes, which go once the stack is down (a stack's home holds its databases, Kafka's log
and the worker's tables: a gigabyte or more after a benchmark)."""
import os
import shutil
import tempfile
from pathlib import Path

# Below Linux's ephemeral range (32768-60999), where an outgoing connection could take them.
# Q2C_TEST_PORT_OFFSET moves them all, to run the suite beside a benchmark's stack.
_OFFSET = int(os.environ.get("Q2C_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {name: str(port + _OFFSET) for name, port in {
    "Q2C_PG_PORT": 25532, "Q2C_KAFKA_PORT": 29192, "Q2C_CONTROLLER_PORT": 29193,
    "Q2C_CONNECT_PORT": 28183, "Q2C_METRICS_PORT": 28100, "Q2C_WORKER_WEB_PORT": 26166,
    "Q2C_PROMETHEUS_PORT": 29190, "Q2C_KAFKA_JMX_PORT": 29194, "Q2C_CONNECT_JMX_PORT": 28184,
}.items()}


def throwaway_home(prefix: str) -> Path:
    """A new, empty folder for a stack's ``Q2C_HOME``; ``discard`` removes it."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def discard(stack) -> None:
    """Stop ``stack`` and remove its home."""
    stack.down()
    shutil.rmtree(stack.s.home_dir, ignore_errors=True)
