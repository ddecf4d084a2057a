"""``q2c demo`` on the real stack: the simulated firm's changes go through Debezium and the sync
into the ERP, every commercial model in it within seconds; Ctrl-C stops it cleanly."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from streams.testing.firm import eventually
from tests.commands import q2c

pytestmark = pytest.mark.stack


def test_the_firm_fills_the_erp(stack, firm):
    letters = len(json.loads(q2c("dlq", "list", "--json").stdout))
    # the demo opens the fiscal periods of its calendar: a year no other test bills in
    done = q2c("demo", "--size", "3", "--days", "8", "--rate", "400", "--seed", "11", "--day-seconds", "1.5",
               "--start", "2099-11-26", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done after 8 simulated days" in done.stdout and "time entry" in done.stdout, done.stdout
    numbers = [r["quote_number"] for r in firm.crm.rows(
        "select quote_number from crm.quote where quote_number like 'Q-D%%' and revision = 1"
        " and status in ('approved', 'superseded')")]
    contracts = eventually(lambda: (rows := firm.erp.rows(
        "select contract_number, commercial_model from erp_inbound.contract where contract_number = any(%s)", numbers))
        and len(rows) == len(numbers) and rows, what="a contract for each approved quote")
    assert {r["commercial_model"] for r in contracts} == {"time_and_materials", "fixed_fee", "milestone", "retainer"}
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.billing_event where contract_number = any(%s)"
                                    " and event_type = 'time'", numbers), what="time billed")
    assert len(json.loads(q2c("dlq", "list", "--json").stdout)) == letters  # nothing it did was dead-lettered


def test_ctrl_c_stops_it_between_two_changes():
    demo = subprocess.Popen([sys.executable, "-m", "streams.cli", "demo", "--size", "2", "--rate", "20", "--start", "2099-11-26"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    time.sleep(4)
    demo.send_signal(signal.SIGINT)
    out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert "stopped after" in out and "Traceback" not in err
