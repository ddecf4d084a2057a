"""docs/metrics.md lists every metric the worker serves, with its type and labels: the test
stack's worker is scraped, and the reference must hold what it serves; and every metric the
reference names is one the code defines."""
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(q2c_\w+)` \| (\w+) \| ([^|]*) \|")


def documented() -> dict[str, tuple[str, set[str]]]:
    rows = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        if found := ROW.match(line):
            rows[found[1]] = (found[2], set(re.findall(r"`(\w+)`", found[3])))
    return rows


@pytest.mark.stack
def test_every_metric_served_is_in_the_reference_with_its_type_and_labels(stack):
    text = httpx.get(stack.s.metrics_url, timeout=10).text
    reference = documented()
    served = 0
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("q2c_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name in reference, f"{name} is served but not in docs/metrics.md"
        kind, labels = reference[name]
        assert kind == family.type, f"{name}: served as a {family.type}, documented as a {kind}"
        seen = {label for sample in family.samples for label in sample.labels} - {"le", "quantile"}
        assert seen <= labels and (seen == labels or not family.samples), f"{name}: labels {seen}, documented {labels}"
        served += 1
    assert served >= 30


def test_every_metric_in_the_reference_is_defined_in_the_code():
    code = "".join(p.read_text() for p in (ROOT / "streams").rglob("*.py"))
    for name in documented():
        assert f'"{name.removesuffix("_total")}"' in code or f'"{name}"' in code, f"docs/metrics.md names {name}, no code defines it"
