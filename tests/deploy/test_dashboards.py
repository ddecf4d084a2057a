"""The Grafana boards (deploy/grafana/dashboards/): after a load on the real stack, every panel's
query runs against the embedded Prometheus without an error and names only metrics something
exports (the worker, the JMX exporters of Kafka and Connect, Prometheus itself)."""
import json
import re
from datetime import date, timedelta

import httpx
import pytest

from streams.config import PROJECT_ROOT
from streams.testing.firm import eventually

DASHBOARDS = sorted((PROJECT_ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b(?:q2c|kafka|debezium|jvm|process|python)_[a-zA-Z0-9_:]+|\bup\b")


def _queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) of every target."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)  # label matchers may hold anything
    return set(METRIC.findall(without_labels))


def test_both_boards_exist_with_unique_uids_and_a_datasource():
    boards = {p.stem: json.loads(p.read_text()) for p in DASHBOARDS}
    assert {"q2c-operations", "q2c-quote-to-cash"} <= set(boards)
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        assert all(p["datasource"]["uid"] == "prometheus" for p in board["panels"])


def test_metric_names_are_found_in_queries():
    assert metric_names('histogram_quantile(0.99, sum by (le, sink) (rate(q2c_sync_latency_seconds_bucket{sink="erp"}[5m])))') == {
        "q2c_sync_latency_seconds_bucket"}
    assert metric_names('sum(up{job="q2c-worker"}) and q2c_worker_state{state="running"}') == {"up", "q2c_worker_state"}


def _load(firm, psa, ids) -> None:
    """A milestone engagement accepted, invoiced today and partly paid, its second milestone due
    within three months (so the warehouse's aging, DSO, backlog, forecast, dispute rate and
    billing cycle all have figures); a T&M one with time on hold."""
    today = date.today()
    n = ids()
    firm.account(n)
    number = f"Q-D{n}"
    firm.quote(n, n, number, "milestone", (today - timedelta(days=60)).isoformat(), (today + timedelta(days=60)).isoformat())
    firm.line(n * 10 + 1, n, 1, "milestone", price="1000", code="A")
    firm.line(n * 10 + 2, n, 2, "milestone", price="2000", code="B")
    firm.approve(n)
    pid = psa.project_of(number)["id"]
    eventually(lambda: len(firm.psa.rows("select 1 from psa.milestone where project_id = %s", pid)) == 2)
    psa.accept(pid, "A")
    psa.accept(pid, "B")
    cust = f"C{n % 10**9}"
    psa.customer(cust, f"ACC-{n:08d}")
    psa.invoice(f"I{n % 10**9}", cust, number, "1200.00", [("MS", f"MS:{number}:A", "1000.00")], day=today.isoformat(),
                due=(today + timedelta(days=30)).isoformat())
    psa.receipt(f"R{n % 10**9}", f"I{n % 10**9}", cust, "500.00")
    m = ids()
    firm.account(m)
    tm = f"Q-D{m}"
    firm.quote(m, m, tm, "time_and_materials", "2026-01-01", "2026-12-31")
    firm.line(m * 10 + 1, m, 1, "role_rate", qty="100", price="100", role="CONS")
    firm.approve(m)
    tm_pid = psa.project_of(tm)["id"]
    psa.resource(m)
    psa.time(m, tm_pid, m, "8", day="2026-03-10")  # not assigned: on hold
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.receivable where invoice_number = %s and paid_amount = 500",
                                    f"I{n % 10**9}"), what="the invoice and its payment in the ERP")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.billing_event where contract_number = %s and status = 'on_hold'", tm),
               what="the held time event")


@pytest.mark.stack
def test_every_panel_query_runs_and_names_exported_metrics(stack, firm, psa, ids):
    _load(firm, psa, ids)
    queries = _queries()
    wanted = set().union(*(metric_names(expr) for _, _, expr in queries))
    prometheus = stack.s.prometheus_url

    def scraped() -> bool:
        names = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=5).json()["data"])
        assert wanted <= names, f"named by a board, exported by nothing: {sorted(wanted - names)}"
        return True

    eventually(scraped, timeout=90, what="every metric the boards name scraped")
    for board, title, expr in queries:
        answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (board, title, expr, answer)
