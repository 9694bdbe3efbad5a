"""Every EF.SOD a line signs, on record in the journal before it goes to a chip."""

from __future__ import annotations

from datetime import UTC, datetime

from personalization.journal.port import JournalPort
from personalization.journal.registry_port import Signature
from personalization.prep import CardData, OnSigned


def signature_recorder(journal: JournalPort, batch: str | None, command: str) -> OnSigned:
    """A preparer's ``on_signed`` that records each signature (document number, DS key,
    time) in the journal at once: one short write a card, beside the card's own, made before
    the EF.SOD leaves the process."""
    def record(data: CardData, ds: str) -> None:
        journal.record_signatures([Signature(
            ds, data.document_number, datetime.now(UTC).isoformat(timespec="milliseconds"),
            command, batch, data.application_id)])
    return record
