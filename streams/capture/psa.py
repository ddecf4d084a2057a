"""PSA rows → canonical resources, projects, milestones, assignments, time and expenses."""
from streams.canonical.models import Assignment, BillingMilestone, ExpenseItem, Project, Resource, TimeEntry
from streams.capture.mapping import TableMapping, source_updated_at

TABLES = {
    m.table_id: m
    for m in (
        TableMapping("psa.resource", Resource, ("id",)),
        TableMapping("psa.project", Project, ("id",)),
        TableMapping("psa.milestone", BillingMilestone, ("id",)),
        TableMapping("psa.assignment", Assignment, ("id",)),
        TableMapping("psa.timesheet_entry", TimeEntry, ("id",)),
        TableMapping("psa.expense_line", ExpenseItem, ("id",), source_updated_at),
    )
}
