"""The worker's ``/health``: its state and its parts', and an HTTP status a probe can act on
(200 only while running), served by the worker's own HTTP server."""
import json

import httpx
import pytest

from streams.agents import metrics
from streams.agents.metrics import Health


def test_starting_until_the_tables_are_restored():
    health = Health()
    assert health.as_dict()["state"] == "starting"
    assert health.http_status().startswith("503")
    health.set("running")
    assert health.as_dict()["state"] == "running"
    assert health.http_status().startswith("200")


def test_a_part_that_does_not_run_is_the_workers_state_with_its_reason():
    health = Health()
    health.set("running")
    health.set("running", part="warehouse loader")
    health.set("stalled", "no event read for 30 s with events left", part="reading")
    assert health.as_dict()["state"] == "stalled"
    assert health.as_dict()["reason"] == "reading: no event read for 30 s with events left"
    assert health.http_status().startswith("503")
    health.set("running", part="reading")
    assert health.http_status().startswith("200")
    health.set("degraded", "ERP write failing; retrying")
    assert health.as_dict() | {"since": 0} == {"state": "degraded", "reason": "ERP write failing; retrying", "since": 0}
    assert health.http_status().startswith("503")


def test_since_is_when_the_state_began():
    health = Health()
    health.set("degraded", "ERP write failing; retrying")
    since = health.as_dict()["since"]
    health.set("degraded", "ERP write failing; retrying")
    assert health.as_dict()["since"] == since


@pytest.fixture
def served(monkeypatch):
    """The worker's HTTP server on a free loopback port, with a health of the test's own."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    health = Health()
    monkeypatch.setattr(metrics, "HEALTH", health)
    server = metrics.serve("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", health
    server.shutdown()
    server.server_close()


def test_the_health_endpoint_answers_503_unless_running(served):
    url, health = served
    response = httpx.get(f"{url}/health")
    assert response.status_code == 503 and response.json()["state"] == "starting"
    health.set("running")
    assert httpx.get(f"{url}/health").status_code == 200
    health.set("degraded", "ERP write failing; retrying")
    response = httpx.get(f"{url}/health")
    assert response.status_code == 503
    assert json.loads(response.text)["reason"] == "ERP write failing; retrying"
