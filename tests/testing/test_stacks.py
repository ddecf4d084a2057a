"""The stacks the tests and benchmarks start leave nothing behind: each had a home of its own
(its databases, Kafka's log, the worker's tables: gigabytes after a benchmark), removed once the
stack is down. Before, every run left its home in /tmp until the disk filled."""
from streams.config import Settings
from streams.stack.manager import Stack
from streams.testing.stacks import discard, throwaway_home


def test_a_stack_discarded_leaves_no_home():
    home = throwaway_home("q2c-discard-")
    (home / "logs").mkdir()
    (home / "logs" / "kafka.log").write_bytes(b"x" * 1024)
    discard(Stack(Settings(home=home)))  # nothing runs under this home: down() stops nothing
    assert not home.exists()
