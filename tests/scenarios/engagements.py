"""Engagements the scenarios build through the firm's systems, and what they read back from the
ERP. Periods and tax rates are shared by every engagement, so each plans its engagement in a year
of its own (``year``) and opens only that year's periods."""
from streams.testing.firm import eventually


def events(firm, number, source_ref=None):
    sql = "select * from erp_inbound.billing_event where contract_number = %s"
    params = [number]
    if source_ref:
        sql += " and source_ref = %s"
        params.append(source_ref)
    return firm.erp.rows(sql + " order by billing_event_id", *params)


def schedule(firm, number):
    return {r["schedule_key"]: r for r in firm.erp.rows(
        "select * from erp_inbound.billing_schedule where contract_number = %s", number)}


def engagement(firm, ids, model, lines, start=None, end=None, discount="0", approve=True):
    n = ids()
    year = 2100 + (n // 1000) % 800
    firm.account(n)
    number = f"Q-S{n}"
    firm.quote(n, n, number, model, start or f"{year}-01-01", end or f"{year}-06-30", discount=discount)
    for i, (kind, kw) in enumerate(lines, 1):
        firm.line(n * 10 + i, n, i, kind, **kw)
    if approve:
        firm.approve(n)
    return n, number, year


def consultant_on_time_and_materials(firm, psa, ids):
    """A T&M engagement at 100 an hour, one consultant assigned for its term, 8 hours approved
    (entry ``n``); returns (n, contract number, year, project id)."""
    n, number, year = engagement(firm, ids, "time_and_materials", [("role_rate", dict(qty="100", price="100", role="CONS"))])
    pid = psa.project_of(number)["id"]
    psa.resource(n)
    psa.assign(n, pid, n, start=f"{year}-01-01", end=f"{year}-06-30")
    psa.time(n, pid, n, "8", day=f"{year}-01-10")
    return n, number, year, pid


def cancelled_engagement(firm, psa, ids, stamp=False):
    """A T&M engagement with two milestones and a fixed fee over three months: time approved,
    M1 accepted and January opened, then the quote cancelled in the CRM (``stamp``: the CRM sets
    updated_at; else it leaves it alone, as the approval here does), then M2 accepted, February
    opened, time and an expense approved. Returns (n, contract number, year, project id); the
    later entry is ``n + 1``."""
    n, number, year = engagement(firm, ids, "time_and_materials", [
        ("role_rate", dict(qty="100", price="100", role="CONS")),
        ("milestone", dict(price="1000", code="M1")),
        ("milestone", dict(price="2000", code="M2")),
        ("fixed_fee", dict(price="3000")),
        ("expense_allowance", dict(price="500")),
    ], approve=False)
    firm.crm.run("update crm.quote set end_date = %s where id = %s", f"{year}-03-31", n)  # three installments
    firm.approve(n)
    pid = psa.project_of(number)["id"]
    eventually(lambda: len(firm.psa.rows("select 1 from psa.milestone where project_id = %s", pid)) == 2, what="milestones provisioned")
    psa.resource(n)
    psa.assign(n, pid, n, start=f"{year}-01-01", end=f"{year}-06-30")
    psa.time(n, pid, n, "8", day=f"{year}-01-10")
    psa.accept(pid, "M1")
    psa.period(f"{year}01", "O")
    eventually(lambda: len([e for e in events(firm, number) if e["status"] == "ready"]) == 3, what="M1, January and the time ready")
    firm.crm.run("update crm.quote set status = 'cancelled'" + (", updated_at = now()" if stamp else "") + " where id = %s", n)
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.contract where contract_number = %s and status = 'cancelled'", number),
               what="the contract cancelled")
    psa.accept(pid, "M2")
    psa.period(f"{year}02", "O")
    psa.time(n + 1, pid, n, "6", day=f"{year}-02-10")
    psa.expense(n, pid, n, "120.00")
    return n, number, year, pid


def billing_queue(firm, number):
    return {(e["source_ref"].split(":")[0], e["billing_event_id"].split(":")[-1] if e["event_type"] in ("milestone", "fixed_fee")
             else e["source_ref"].split(":")[1]): (e["status"], e["hold_reason"]) for e in events(firm, number)}
