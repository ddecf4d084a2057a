"""``/status`` and the worker's metrics of what surrounds it: drawn from the worker's own
metrics, shown in a real browser (Debian's headless Chromium), with a screenshot in the test output."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from streams.agents.metrics import Health
from streams.agents.status_page import quantile, render
from streams.testing.firm import eventually

EXPOSITION = """# TYPE q2c_sync_latency_seconds histogram
q2c_sync_latency_seconds_bucket{le="0.1",sink="erp"} 10.0
q2c_sync_latency_seconds_bucket{le="0.5",sink="erp"} 90.0
q2c_sync_latency_seconds_bucket{le="1.0",sink="erp"} 100.0
q2c_sync_latency_seconds_bucket{le="+Inf",sink="erp"} 100.0
q2c_sync_latency_seconds_count{sink="erp"} 100.0
q2c_sync_latency_seconds_sum{sink="erp"} 30.0
# TYPE q2c_dead_letters_total counter
q2c_dead_letters_total{reason="invalid_row"} 3.0
# TYPE q2c_billing_events_on_hold gauge
q2c_billing_events_on_hold{reason="no_tax_rate"} 2.0
# TYPE q2c_consumer_lag_records gauge
q2c_consumer_lag_records{group="q2c",partition="0",topic="q2c.psa.psa.timesheet_entry"} 42.0
# TYPE q2c_connector_state gauge
q2c_connector_state{connector="q2c-psa",state="RUNNING"} 1.0
q2c_connector_state{connector="q2c-psa",state="FAILED"} 0.0
# TYPE q2c_observed_up gauge
q2c_observed_up{what="erp_figures"} 0.0
# TYPE q2c_receivables_aging_amount gauge
q2c_receivables_aging_amount{bucket="current",currency="EUR"} 1050.0
q2c_receivables_aging_amount{bucket="31-60",currency="EUR"} 700.0
q2c_receivables_aging_amount{bucket="90+",currency="GBP"} 900.0
# TYPE q2c_days_sales_outstanding gauge
q2c_days_sales_outstanding{currency="EUR"} 78.3
"""


def test_quantiles_are_prometheus_histogram_quantile():
    buckets = [(0.1, 10.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (40 / 80))
    assert quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * (9 / 10))
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_the_page_shows_each_figure_of_the_metrics():
    health = Health()
    health.set("running")
    health.set("degraded", "ERP write failing; retrying", part="warehouse loader")
    page = render(health, EXPOSITION, now=1_800_000_000)
    assert 'id="state">degraded<' in page and "warehouse loader: ERP write failing; retrying" in page
    assert "<td>erp</td><td>100</td><td>300 ms</td><td>950 ms</td>" in page
    assert "<td>invalid_row</td><td>3</td>" in page
    assert "<td>no_tax_rate</td><td>2</td>" in page
    assert "<td>q2c</td><td>q2c.psa.psa.timesheet_entry</td><td>0</td><td>42</td>" in page
    assert "<td>q2c-psa</td><td>RUNNING</td>" in page and "FAILED" not in page
    assert "Could not read: erp_figures" in page
    # receivables by currency, never summed across currencies; a currency with nothing invoiced lately has no DSO
    assert "<td>EUR</td><td>1,050.00</td><td>0.00</td><td>700.00</td><td>0.00</td><td>0.00</td><td>78.3</td>" in page
    assert "<td>GBP</td><td>0.00</td><td>0.00</td><td>0.00</td><td>0.00</td><td>900.00</td><td>-</td>" in page


def test_the_page_escapes_what_it_shows():
    health = Health()
    health.set("degraded", "<script>alert(1)</script>")
    page = render(health, "")
    assert "<script>" not in page and "&lt;script&gt;" in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "`make test` installs Debian's chromium for the status page's browser test"
    return found


def _browse(url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="q2c-chromium-")
    try:
        return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={profile}", *args, url], capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.stack
def test_the_worker_serves_its_status_and_what_surrounds_it(stack, firm, ids, tmp_path_factory):
    n = ids()
    firm.account(n)
    number = f"Q-T{n}"
    firm.quote(n, n, number, "fixed_fee", "2026-11-15", "2027-02-10")
    firm.line(n * 10 + 1, n, 1, "fixed_fee", price="10000")
    firm.approve(n)
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s", number),
               what="the contract in the ERP")

    def metrics() -> str:
        return httpx.get(stack.s.metrics_url, timeout=10).text

    text = eventually(lambda: (t := metrics()) and all(f'q2c_sync_latency_seconds_count{{sink="{sink}"}}' in t
                                                        for sink in ("erp", "psa", "kafka", "warehouse")) and t,
                      timeout=30, what="the latency to the ERP, the PSA, Kafka and the warehouse observed")
    lines = text.splitlines()
    assert any(line.startswith("q2c_build_info{") and line.endswith(" 1.0") for line in lines)
    for what in ("replication_slots", "connectors", "erp_figures"):
        assert f'q2c_observed_up{{what="{what}"}} 1.0' in lines, what
    for name in ("q2c-crm", "q2c-psa", "q2c-finance"):
        assert f'q2c_connector_state{{connector="{name}",state="RUNNING"}} 1.0' in lines
    assert any(line.startswith('q2c_replication_slot_active{database="psa"') and line.endswith(" 1.0") for line in lines)
    assert any(line.startswith('q2c_source_last_commit_timestamp_seconds{source="crm"}') for line in lines)
    eventually(lambda: "\nq2c_consumer_lag_records{" in metrics(), timeout=30, what="consumer lag measured")

    url = f"http://127.0.0.1:{stack.s.metrics_port}/status"
    assert httpx.get(url, timeout=10).status_code == 200
    dom = _browse(url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="state">running<' in dom.stdout
    assert "<td>erp</td>" in dom.stdout and "<td>q2c-psa</td><td>RUNNING</td>" in dom.stdout
    out = Path(os.environ.get("Q2C_TEST_OUTPUT") or tmp_path_factory.mktemp("status-page"))
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "status.png"
    done = _browse(url, f"--screenshot={shot}", "--window-size=1400,1000", "--hide-scrollbars")
    assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    print(f"status page screenshot: {shot}")
