"""A milestone engagement cancelled at ``CANCEL``: the builders of the contract-life tests and of
reconcile's (what a cancelled contract may still bill)."""
from datetime import date, timedelta

from tests.rules.builders import T0, line, project, view

CANCEL = T0 + timedelta(days=10)
BEFORE, AFTER = CANCEL - timedelta(days=1), CANCEL + timedelta(days=1)
TERM = dict(start=date(2026, 11, 1), end=date(2027, 1, 31))
MILESTONES = [line(1, "milestone", price="1000", code="M1"), line(2, "milestone", price="2000", code="M2")]


def engagement(quotes, lines=MILESTONES, **kw):
    kw.setdefault("project", project())
    return view(quotes, lines, **kw)
