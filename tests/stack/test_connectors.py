"""``q2c connectors apply|status`` against the embedded stack's Kafka Connect: idempotent, and the
state of each connector and task."""
import json

import pytest

from tests.commands import q2c

pytestmark = pytest.mark.stack


def test_apply_is_idempotent_and_status_shows_every_task_running(stack):
    applied = q2c("connectors", "apply")
    assert applied.returncode == 0, applied.stderr
    lines = dict(line.split() for line in applied.stdout.splitlines() if not line.startswith("every"))
    assert lines == {"q2c-crm": "unchanged", "q2c-finance": "unchanged", "q2c-psa": "unchanged"}  # the stack applied them
    status = q2c("connectors", "status", "--json")
    assert status.returncode == 0, status.stderr
    found = {s["name"]: s for s in json.loads(status.stdout)}
    assert set(found) == {"q2c-crm", "q2c-psa", "q2c-finance"}
    assert all(s["running"] and s["tasks"] for s in found.values())
    shown = q2c("connectors", "status")
    rows = [line.split() for line in shown.stdout.splitlines()]
    assert rows[0] == ["connector", "task", "state", "trace"]
    psa_row = rows.index(["q2c-psa", "RUNNING"])
    assert rows[psa_row + 1] == ["0", "RUNNING"]  # its task, beneath it


def test_an_unreachable_connect_is_one_clear_line():
    done = q2c("connectors", "status", Q2C_CONNECT_REST_URL="http://127.0.0.1:9")
    assert done.returncode == 4 and "unreachable" in done.stderr and "Traceback" not in done.stderr
