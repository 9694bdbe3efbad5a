"""The journal, for a scheduled job: drop the personal data of every closed batch whose
retention has run out, and finish purges left incomplete (another process was reading)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from personalization.config import LineConfig
from personalization.journal.port import PurgeIncompleteError
from personalization.service.batches import open_journal

__all__ = ["Purged", "purge"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Purged:
    """Batch names only: those whose personal data is gone, and those still pending."""

    purged: list[str]
    pending: list[str]

    @property
    def complete(self) -> bool:
        """Nothing is left pending."""
        return not self.pending


def purge(config: LineConfig, *, at: datetime | None = None,
          wait_s: float | None = None) -> Purged:
    """Purge every closed batch due at ``at`` (now by default), waiting at most ``wait_s`` for
    other readers to let go of the journal's log; pending ones are an alarm, logged."""
    with open_journal(config, sealed=True) as journal:
        try:
            return Purged(journal.purge_due(at, wait_s=wait_s), [])
        except PurgeIncompleteError as exc:
            _log.error("journal.purge_incomplete", batches=exc.pending)
            return Purged(exc.purged, exc.pending)
