"""The billing schedule of one approved quote, per commercial model, and how a change order
reshapes an engagement's schedule."""
from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from streams.canonical.models import Quote, QuoteLine
from streams.rules.money import net_amount, split


@dataclass(frozen=True)
class PlannedItem:
    """A schedule item as one quote revision plans it (before eligibility and billing)."""
    schedule_key: str
    billing_type: str
    planned_date: date
    amount: Decimal
    line_no: int
    tax_code: str
    description: str | None


def months_touched(start: date, end: date) -> list[tuple[int, int]]:
    """Every calendar month (year, month) that the term start..end touches, in order."""
    if end < start:
        return []
    months, (y, m) = [], (start.year, start.month)
    while (y, m) <= (end.year, end.month):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def _last_day(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def plan(quote: Quote, lines: Iterable[QuoteLine]) -> list[PlannedItem]:
    """The schedule items one quote plans (RULES.md, Approval of a quote)."""
    items: list[PlannedItem] = []
    for line in sorted(lines, key=lambda item: item.line_no):
        net = net_amount(line.quantity, line.unit_price, line.discount_pct, quote.discount_pct)
        if line.line_type == "milestone" and line.milestone_code:
            items.append(PlannedItem(
                f"MS:{line.milestone_code}", "milestone", line.milestone_due or quote.end_date, net,
                line.line_no, line.tax_code, line.description,
            ))
        elif line.line_type == "fixed_fee":
            months = months_touched(quote.start_date, quote.end_date)
            for (y, m), amount in zip(months, split(net, len(months)) if months else [], strict=False):
                items.append(PlannedItem(
                    f"FF:{line.line_no}:{y:04d}{m:02d}", "fixed_fee", _last_day(y, m), amount,
                    line.line_no, line.tax_code, line.description,
                ))
        elif line.line_type == "retainer_fee":
            n = int(line.quantity)
            monthly = net_amount(Decimal(1), line.unit_price, line.discount_pct, quote.discount_pct)
            y, m = quote.start_date.year, quote.start_date.month
            for _ in range(n):
                items.append(PlannedItem(
                    f"RT:{line.line_no}:{y:04d}{m:02d}", "retainer", date(y, m, 1), monthly,
                    line.line_no, line.tax_code, line.description,
                ))
                y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return items


@dataclass(frozen=True)
class ScheduleEntry:
    """An item of the engagement's schedule after every approved revision, with its status."""
    item: PlannedItem
    status: str  # 'planned' or 'cancelled' here; eligibility and billing are applied later
    locked: bool  # eligible or billed when a later revision came: it keeps its amount
    withdrawn: bool = False  # cancelled with the contract: a trigger after that is held, not billed


def reshape(
    revisions: list[tuple[Quote, list[QuoteLine]]],
    locked_at: Callable[[str, datetime | None], bool],
    cancelled_at: Sequence[datetime | None] = (),
) -> dict[str, ScheduleEntry]:
    """Fold the approved revisions, oldest first, into the engagement's schedule.

    A change order: items still planned take the new amounts; new items are added as planned
    (an item cancelled earlier comes back when it plans it again); planned items missing from it
    become cancelled; items already eligible or billed when it was approved
    (``locked_at(key, approved_at)``) stay as they are. A revision cancelled at
    ``cancelled_at[i]``: its items still planned then become cancelled (withdrawn); those already
    eligible or billed stay.
    """
    schedule: dict[str, ScheduleEntry] = {}
    for i, (quote, lines) in enumerate(revisions):
        planned = {p.schedule_key: p for p in plan(quote, lines)}
        for key, entry in list(schedule.items()):
            if entry.locked or (entry.status == "planned" and locked_at(key, quote.approved_at)):
                schedule[key] = ScheduleEntry(entry.item, entry.status, True)
            elif key in planned:
                schedule[key] = ScheduleEntry(planned[key], "planned", False)
            else:
                schedule[key] = ScheduleEntry(entry.item, "cancelled", False)
        for key, item in planned.items():
            if key not in schedule:
                schedule[key] = ScheduleEntry(item, "planned", False)
        cancelled = cancelled_at[i] if i < len(cancelled_at) else None
        if cancelled is None:
            continue
        for key, entry in list(schedule.items()):
            if entry.locked or entry.status != "planned":
                continue
            if locked_at(key, cancelled):
                schedule[key] = ScheduleEntry(entry.item, "planned", True)
            else:
                schedule[key] = ScheduleEntry(entry.item, "cancelled", False, withdrawn=True)
    return schedule
