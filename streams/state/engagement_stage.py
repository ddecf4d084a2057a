"""The deriving side of a scaled-out sync: bundle parts in, the rows the sinks must write out.

Each worker owning partitions of ``q2c.changes.by-engagement`` applies the parts it reads to its
copies of their engagements' rows and derives every engagement whose bundle is complete, with the
same ``Processor.engagement`` a single worker runs on its full mirror, incrementally from the
engagement's book when it has one (the rows the bundles changed), in full otherwise. No I/O.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from streams.state.engagement_book import Books
from streams.state.ledger import Ledger
from streams.state.mirror import Applied
from streams.state.processor import BatchResult, Processor
from streams.state.routing import BundlePart, EngagementCopies


class EngagementStage:
    def __init__(self, ledger: Ledger | None = None,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date()):
        self.copies = EngagementCopies()
        self.ledger = ledger if ledger is not None else Ledger()
        self.today = today
        self.books = Books()
        # rows changed since each engagement was last derived (None: derive in full: a whole set
        # arrived, or a ledger was handed over)
        self.changed: dict[str, list[Applied] | None] = {}

    def process(self, parts: list[tuple[int, BundlePart]]) -> BatchResult:
        """Apply ``(offset, part)`` pairs in their order; derive the engagements whose last part
        came. A part delivered again changes no row but still derives: the sinks may not have
        been written when the worker stopped. Ledger rows handed over are held at once (the
        derivation needs them); a failed batch must reload the ledger from its table."""
        result = BatchResult()
        complete: list[str] = []
        for offset, part in parts:
            writes, applied = self.copies.apply(part, offset)
            result.mirror_writes.update(writes)
            changed = self.changed.setdefault(part.contract, [])
            if part.reset or part.ledger or changed is None:
                self.changed[part.contract] = None
            else:
                changed.extend(applied)
            for key, doc in part.ledger.items():  # handed over: kept only where nothing newer is held
                if not self.ledger.holds(key):
                    result.ledger_writes[key] = self.ledger.load(key, doc)
            if part.last and part.contract not in complete:
                complete.append(part.contract)
        for contract in complete:
            applied = self.changed.pop(contract, None)
            Processor(self.copies.mirror(contract), self.ledger, self.today, books=self.books).engagement(contract, result, applied)
        return result

    def commit(self, result: BatchResult) -> None:
        """Record what the sinks wrote (call only after they succeeded)."""
        self.ledger.apply(result.ledger_writes)
