"""PSA rows → canonical resources, projects, milestones, assignments, time and expenses."""
from streams.canonical.models import Assignment, BillingMilestone, ExpenseItem, Project, Resource, TimeEntry
from streams.capture.mapping import TableMapping, source_updated_at

TABLES = {
    m.table_id: m
    for m in (
        TableMapping("psa.resource", "resource", Resource, ("id",), shared=True),
        TableMapping("psa.project", "project", Project, ("id",)),
        TableMapping("psa.milestone", "billing_milestone", BillingMilestone, ("id",)),
        TableMapping("psa.assignment", "assignment", Assignment, ("id",)),
        TableMapping("psa.timesheet_entry", "time_entry", TimeEntry, ("id",)),
        TableMapping("psa.expense_line", "expense_item", ExpenseItem, ("id",), source_updated_at),
    )
}
