"""What one batch writes to the ERP's inbound interface (``streams.sinks.erp`` writes it)."""
from __future__ import annotations

from dataclasses import dataclass, field

from streams.canonical.models import BillingEvent, Contract, ProjectCost, Receivable, ScheduleItem


@dataclass
class ErpBatch:
    contracts: list[Contract] = field(default_factory=list)
    schedule: list[ScheduleItem] = field(default_factory=list)
    events: list[BillingEvent] = field(default_factory=list)
    costs: list[ProjectCost] = field(default_factory=list)
    receivables: list[Receivable] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.contracts) + len(self.schedule) + len(self.events) + len(self.costs) + len(self.receivables)
