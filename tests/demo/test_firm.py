"""The simulated firm of ``q2c demo``, without I/O: one seed, one firm; every commercial model
in its first quotes; a change order approved with the quote it amends superseded, as the CRM does."""
from datetime import date
from decimal import Decimal

from streams.demo.firm import MODELS, Observed, ReadyEvent, SimulatedFirm


def a_fortnight(seed: int) -> list:
    firm = SimulatedFirm(seed, size=4, start=date(2026, 11, 30))
    actions = firm.setup()
    for _ in range(14):
        approved = [e for e in firm.engagements if e.status == "approved"]
        projects = {e.number: 1000 + i for i, e in enumerate(approved)}
        currency = {a[0]: a[2] for a in firm.accounts}
        ready = [ReadyEvent(f"TE:{e.number}:{firm.today}", e.number, "time", Decimal("800.00"), currency[e.account])
                 for e in approved]
        actions += firm.day(Observed(projects, {pid: ["M1"] for pid in projects.values()}, ready))
    return actions


def test_one_seed_one_firm():
    assert a_fortnight(7) == a_fortnight(7)
    assert a_fortnight(7) != a_fortnight(8)


def test_the_first_quotes_are_of_every_model_and_are_won():
    firm = SimulatedFirm(3, size=6, start=date(2026, 12, 1))
    firm.setup()
    for _ in range(3):
        firm.day(Observed())
    assert [e.model for e in firm.engagements[:4]] == list(MODELS)
    assert all(e.status == "approved" for e in firm.engagements[:4])


def test_what_a_fortnight_holds():
    done = {a.what for a in a_fortnight(11)}
    assert {"quote", "approval", "assignment", "time entry", "time approval", "fiscal period", "invoice",
            "receipt", "milestone accepted"} <= done


def test_a_change_order_supersedes_the_quote_it_amends_in_one_transaction():
    firm = SimulatedFirm(1, size=1, start=date(2026, 12, 1))
    firm.setup()
    firm.day(Observed())
    engagement = firm.engagements[0]
    engagement.status = "approved"
    action = firm._change_order(engagement)
    assert action.database == "crm" and action.what == "change order"
    assert action.statements[0][1][1] == f"{engagement.number}-R2"
    assert action.statements[-1] == ("UPDATE crm.quote SET status = 'superseded', updated_at = now() WHERE id = %s",
                                     (engagement.quote_id,))


def test_each_ready_event_is_invoiced_once_in_the_clients_currency():
    firm = SimulatedFirm(2, size=1, start=date(2026, 12, 4))  # a Friday: invoicing day
    firm.setup()
    firm._quote(firm.accounts[0][0], firm.accounts[0][2], firm.today)
    number, currency = firm.engagements[0].number, firm.accounts[0][2]
    ready = [ReadyEvent("E1", number, "time", Decimal("100.00"), currency),
             ReadyEvent("E2", number, "expense", Decimal("20.00"), "JPY"),  # another currency: not on this invoice
             ReadyEvent("E3", "Q-OTHER", "time", Decimal("5.00"), currency)]  # another firm's engagement
    first = [a for a in firm._invoices(firm.today, ready) if a.what == "invoice"]
    assert len(first) == 1 and [s[1][3] for s in first[0].statements[1:]] == ["E1"]
    assert firm._invoices(firm.today, ready) == []  # invoiced already
