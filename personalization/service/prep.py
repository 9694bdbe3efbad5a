"""Data preparation: approved applications → the exact, signed chip files of each card.

Each card is written to ``<out>/<application_id>/EF.*.bin`` (tag and length included) and the
run is summarised in ``<out>/prep.json``; invalid applications never stop the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hsm.errors import HSMError
from personalization.applications.intake import InvalidRecord
from personalization.journal import open_journal
from personalization.journal.registry_port import Signature
from personalization.prep import CardData, PreparedCard, Preparer, prepare_all
from personalization.service.applications import read_intake
from personalization.service.errors import ServiceError
from personalization.service.keys import open_inventory, open_signer
from personalization.service.registry import receive
from personalization.service.setup import LineSetup

__all__ = ["InvalidRecord", "PrepResult", "PreparedEntry", "Progress", "prepare_cards"]

# Told (cards written, cards to write): once before the first card, then after each one.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """One prepared card as prep.json lists it."""

    application_id: str
    document_number: str
    files: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one ``prepared`` entry."""
        return {"application_id": self.application_id,
                "document_number": self.document_number, "files": list(self.files)}


@dataclass(frozen=True, slots=True)
class PrepResult:
    """What a preparation run wrote, what it rejected, and the DS key that signed."""

    out: Path
    prepared: tuple[PreparedEntry, ...]
    rejected: tuple[InvalidRecord, ...]
    document_signer: str

    def as_dict(self) -> dict[str, Any]:
        """The content of ``prep.json``."""
        return {"prepared": [entry.as_dict() for entry in self.prepared],
                "rejected": [record.as_dict() for record in self.rejected],
                "document_signer": self.document_signer}


def _quiet(done: int, total: int) -> None:
    """No progress to show."""


def prepare_cards(applications: Path, setup: LineSetup, out: Path, *, today: date,
                  progress: Progress = _quiet, actor: str | None = None,
                  unsigned: bool = False) -> PrepResult:
    """Prepare and sign the chip files of every valid application with the active DS key.

    The file must be one the registry signed (see :mod:`.registry`; ``unsigned``: a plain
    file, on the embedded default only). Every signature is recorded in the journal before
    the card's files are written. When the HSM stops signing, raises ServiceError saying how
    many cards were written. With ``actor`` (the officer who ran it) the run is an event of
    the journal's chain: who, which DS, how many cards, and the SHA-256 of the input file
    (never its content).
    """
    profile = setup.profile()
    prepared: list[PreparedEntry] = []
    with receive(setup.config, applications, unsigned=unsigned) as got, \
            open_journal(setup.config.journal.url) as journal:
        intake = read_intake(got.records, profile, today, base=got.base,
                             photo_digests=got.signed)
        valid = [application for _, application in intake.valid]
        signed: list[Signature] = []

        def record(data: CardData, ds: str) -> None:
            signed.append(Signature(ds, data.document_number,
                                    datetime.now(UTC).isoformat(timespec="milliseconds"),
                                    "prep", None, data.application_id))

        try:
            out.mkdir(parents=True, exist_ok=True)
            with (open_inventory(setup.config) as inventory,
                  open_signer(setup.config, inventory) as signer):
                progress(0, len(valid))
                for card in prepare_all(Preparer(profile, signer, record), valid):
                    if signed:  # a run of signatures (up to 64) recorded before any file
                        journal.record_signatures(signed)
                        signed.clear()
                    prepared.append(_write_card(out, card))
                    progress(len(prepared), len(valid))
                label = signer.label
        except HSMError as exc:
            raise ServiceError(f"signing stopped after {len(prepared)} cards: {exc}") from exc
        except OSError as exc:
            raise ServiceError(f"cannot write to {out}: {exc.strerror}") from exc
        result = PrepResult(out, tuple(prepared), tuple(intake.invalid), label)
        _write_summary(result)
        if actor is not None:
            journal.note(None, "prep.signed", actor=actor, role="officer", ds=label,
                         prepared=len(prepared), rejected=len(intake.invalid),
                         source_sha256=got.sha256)
    return result


def _write_card(out: Path, card: PreparedCard) -> PreparedEntry:
    application_id = card.data.application_id
    folder = out / application_id
    tmp = out / f".{application_id}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for name, body in card.files.items():
        (tmp / f"{name}.bin").write_bytes(body)
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
        folder.rmdir()
    tmp.rename(folder)  # a card folder appears whole or not at all
    return PreparedEntry(application_id, card.data.document_number, tuple(sorted(card.files)))


def _write_summary(result: PrepResult) -> None:
    text = json.dumps(result.as_dict(), ensure_ascii=False, indent=2) + "\n"
    try:
        (result.out / "prep.json").write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ServiceError(f"cannot write to {result.out}: {exc.strerror}") from exc
