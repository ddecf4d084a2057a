"""What the worker serves over HTTP: no table contents, on loopback unless configured, and no
personal data on any page or metric (on the real stack)."""
import httpx
import psutil
import pytest

from streams.stack.process import pid_of
from streams.testing.firm import eventually

pytestmark = pytest.mark.stack


def _listening(pid: int) -> list[tuple[str, int]]:
    return [(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN]


def test_the_worker_listens_on_loopback_only_and_serves_no_tables(stack):
    pid = pid_of(stack.worker.pidfile)
    listening = _listening(pid)
    assert listening == [("127.0.0.1", stack.s.metrics_port)], listening
    # Faust's web server (its /table/ views answered with source rows) is not started
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{stack.s.worker_web_port}/table/q2c-mirror/", timeout=3)
    for path in ("/table/q2c-mirror/", "/table/q2c-mirror/psa.resource:1/", "/router/"):
        assert httpx.get(f"http://127.0.0.1:{stack.s.metrics_port}{path}", timeout=3).status_code == 404


def test_no_page_or_metric_carries_a_persons_data(stack, firm, ids):
    rid = ids()
    name, email, cost = f"Zelda Quartermaine {rid}", f"zelda.{rid}@example.com", "123.45"
    firm.psa.run(
        "insert into psa.resource (id, employee_no, full_name, email, role_code, home_region, legal_entity,"
        " cost_rate, cost_currency) values (%s, %s, %s, %s, 'CONS', 'EMEA', 'UK01', %s, 'GBP')",
        rid, f"E{rid}", name, email, cost)

    def applied() -> bool:  # the worker has read the row
        text = httpx.get(stack.s.metrics_url, timeout=3).text
        return any(line.startswith('q2c_source_changes_total{op="c",table="psa.resource"}') for line in text.splitlines())

    eventually(applied, timeout=60, what="the worker reading the new resource")
    base = f"http://127.0.0.1:{stack.s.metrics_port}"
    for path in ("/metrics", "/health", "/status"):
        body = httpx.get(base + path, timeout=10).text
        for personal in (name, email, f"E{rid}", "Quartermaine"):
            assert personal not in body, (path, personal)
