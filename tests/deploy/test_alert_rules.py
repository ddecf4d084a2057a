"""The alert rules (deploy/prometheus/alerts.yml): valid, unit-tested with promtool (Debian's
prometheus package ships it), and loaded by the embedded Prometheus."""
import shutil
import subprocess

import httpx
import pytest
import yaml

from streams.config import PROJECT_ROOT
from streams.testing.firm import eventually

RULES = PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = PROJECT_ROOT / "deploy" / "prometheus" / "alerts_test.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, "`make test` installs Debian's prometheus package, which ships promtool"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


def _alert_names() -> set[str]:
    return {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}


def test_the_rules_are_valid():
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_unit_tests_pass():
    done = _promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    fired = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert _alert_names() - fired == set()


@pytest.mark.stack
def test_the_embedded_prometheus_loads_the_rules(stack):
    def loaded() -> set[str]:
        groups = httpx.get(f"{stack.s.prometheus_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        return {rule["name"] for group in groups for rule in group["rules"] if rule.get("health") != "err"}

    eventually(lambda: loaded() >= _alert_names(), timeout=60, what="every alert rule loaded")
