"""``/status``: one read-only HTML page of what the worker and the platform around it are doing,
for the person on call: health of each part, lag, the last change from each source, dead letters,
holds, latency. It is drawn from the worker's health and its own ``/metrics`` (one source of
truth: what the page says, Prometheus has), so it carries no more than the metrics do: no row
contents, no personal data.
"""
from __future__ import annotations

import html
import math
import time
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

STATE_COLOURS = {"running": "#1a7f37", "starting": "#9a6700", "degraded": "#cf222e", "stalled": "#cf222e"}


def _samples(exposition: str) -> dict[str, list[tuple[dict, float]]]:
    out: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative (upper bound, count) buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 0)
        lower, below = upper, count
    return lower


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _table(title: str, header: tuple[str, ...], rows: list[tuple], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(header)}" class="none">{html.escape(empty)}</td></tr>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f'<section><h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table></section>'


AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")  # dw.receivables_aging's


def _receivables(m) -> list[tuple[str, ...]]:
    """A row per currency: its open receivable in each aging bucket, and its DSO."""
    open_by: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, value in m["q2c_receivables_aging_amount"]:
        open_by[labels["currency"]][labels["bucket"]] = value
    dso = {labels["currency"]: value for labels, value in m["q2c_days_sales_outstanding"]}
    return [(currency, *(f"{open_by[currency].get(b, 0):,.2f}" for b in AGING_BUCKETS),
             f"{dso[currency]:.1f}" if currency in dso else "-") for currency in sorted(open_by)]


def render(health, exposition: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    m = _samples(exposition)
    overall = health.as_dict()
    colour = STATE_COLOURS.get(overall["state"], "#57606a")
    parts = [(part, state, reason or "-", _ago(now - since)) for part, (state, reason, since) in sorted(health.parts.items())]

    behind = sorted(m["q2c_consumer_lag_records"], key=lambda s: (s[0].get("group", ""), s[0]["topic"], s[0]["partition"]))
    lag = [(labels.get("group", ""), labels["topic"], labels["partition"], f"{v:.0f}")
           for labels, v in behind if v > 0]  # caught up: not listed
    lag_empty = f"all {len(behind)} partitions caught up" if behind else "not measured yet"
    source_lag = next((v for _, v in m["q2c_source_lag_seconds"]), None)
    last = [(labels["source"], time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(v)), _ago(now - v))
            for labels, v in sorted(m["q2c_source_last_commit_timestamp_seconds"], key=lambda s: s[0]["source"])]
    letters = [(labels["reason"], f"{v:.0f}") for labels, v in sorted(m["q2c_dead_letters_total"], key=lambda s: s[0]["reason"]) if v]
    holds = [(labels["reason"], f"{v:.0f}") for labels, v in sorted(m["q2c_billing_events_on_hold"], key=lambda s: s[0]["reason"])]
    ready = [(labels["currency"], f"{v:,.2f}") for labels, v in sorted(m["q2c_ready_to_bill_amount"], key=lambda s: s[0]["currency"])]
    receivables = _receivables(m)

    by_sink: dict[str, list[tuple[float, float]]] = defaultdict(list)
    counts: dict[str, float] = {}
    for labels, value in m["q2c_sync_latency_seconds_bucket"]:
        by_sink[labels["sink"]].append((float(labels["le"]), value))
    for labels, value in m["q2c_sync_latency_seconds_count"]:
        counts[labels["sink"]] = value
    latency = []
    for sink, buckets in sorted(by_sink.items()):
        p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
        if p50 is not None:
            latency.append((sink, f"{counts.get(sink, 0):.0f}", f"{p50 * 1000:.0f} ms", f"{p99 * 1000:.0f} ms"))

    connectors = sorted({(labels["connector"], labels["state"]) for labels, v in m["q2c_connector_state"] if v == 1})
    tasks = sorted((labels["connector"], labels["task"], labels["state"]) for labels, v in m["q2c_connector_task_state"] if v == 1)
    slots = [(labels["database"], labels["slot"], "yes" if v == 1 else "no") for labels, v in sorted(m["q2c_replication_slot_active"],
                                                                                         key=lambda s: s[0]["database"])]
    slot_lag = {(labels["database"], labels["slot"]): v for labels, v in m["q2c_replication_slot_lag_bytes"]}
    slots = [(d, s, a, f"{slot_lag.get((d, s), 0):,.0f}") for d, s, a in slots]
    unobserved = [labels["what"] for labels, v in m["q2c_observed_up"] if v == 0]

    sections = [
        _table("Parts", ("part", "state", "reason", "since"), parts, "none"),
        _table("Latency, source commit to sink commit (since the worker started)", ("sink", "transactions", "p50", "p99"),
               latency, "no batch written yet"),
        _table("Consumer lag (records not read yet)", ("group", "topic", "partition", "records"), lag, lag_empty),
        _table("Last change applied, per source", ("source", "committed", ""), last, "none yet"),
        _table("Dead letters (since the worker started)", ("reason", "count"), letters, "none"),
        _table("Billing events on hold", ("reason", "events"), holds, "none"),
        _table("Ready to bill", ("currency", "amount"), ready, "nothing"),
        _table("Receivables by days past due, as of today", ("currency", *AGING_BUCKETS, "DSO (days)"), receivables,
               "none open"),
        _table("Connectors", ("connector", "state"), connectors, "none seen"),
        _table("Connector tasks", ("connector", "task", "state"), tasks, "none seen"),
        _table("Replication slots", ("database", "slot", "streaming", "lag (bytes)"), slots, "none seen"),
    ]
    note = ""
    if unobserved:
        note = f'<p class="warn">Could not read: {html.escape(", ".join(unobserved))}</p>'
    lag_text = f"source lag {source_lag:.1f} s" if source_lag is not None else "source lag not measured yet"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>q2c-sync status: {html.escape(overall["state"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }}
.state {{ display: inline-block; padding: .3rem .8rem; border-radius: .4rem; color: white; background: {colour}; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
td, th {{ border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }}
th {{ background: #f6f8fa; }} .none {{ color: #57606a; }} .warn {{ color: #cf222e; }}
section {{ display: inline-block; vertical-align: top; margin-right: 2rem; }}
</style></head>
<body>
<h1>q2c-sync <span class="state" id="state">{html.escape(overall["state"])}</span></h1>
<p id="reason">{html.escape(overall["reason"] or "")}</p>
<p>{html.escape(lag_text)} · page drawn {time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))}</p>
{note}
{"".join(sections)}
</body></html>
"""
