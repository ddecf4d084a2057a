"""The package as the Dockerfile installs it: a wheel, installed into a fresh virtual environment
outside the checkout, encodes and decodes every canonical type and makes the warehouse's views
from the files it carries (schemas, connector configs, SQL), read with importlib.resources.

The environment gets the package from its wheel and nothing else of the checkout; its
dependencies are the suite's own (the checkout's environment's site-packages on PYTHONPATH,
which processes no .pth file, so its editable link to the checkout stays out)."""
import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from streams.canonical.avro import EVENT_TYPES
from streams.config import PROJECT_ROOT
from streams.testing.firm import database_for_sync

pytestmark = pytest.mark.stack


def test_the_installed_wheel_carries_what_it_reads_at_run_time(stack, tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(PROJECT_ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("q2c_sync-*.whl")
    env_dir = tmp_path / "fresh-env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    dsn = database_for_sync(stack.s, "wheel_check", None)
    work = tmp_path / "elsewhere"  # not the checkout: nothing is found relative to it
    work.mkdir()
    checked = subprocess.run(
        [str(python), str(Path(__file__).with_name("installed_check.py"))], cwd=work, capture_output=True, text=True,
        timeout=300, env={"PATH": os.environ["PATH"], "PYTHONPATH": sysconfig.get_paths()["purelib"],
                          "Q2C_CHECK_WAREHOUSE_DSN": dsn, "HOME": str(tmp_path)})
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    found = json.loads(checked.stdout.strip().splitlines()[-1])
    assert found["streams"].startswith(str(env_dir)) and str(PROJECT_ROOT) not in found["schemas"]
    assert found["round_tripped"] == list(EVENT_TYPES)
    assert found["connectors"] == ["crm.json", "finance.json", "psa.json"]
    assert found["systems"] == ["crm.sql", "erp.sql", "finance.sql", "psa.sql"]
    assert "dw.margin_by_engagement" in found["views"] and "dw.quote_to_cash_cycle" in found["views"]
