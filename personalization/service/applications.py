"""Approved applications: check a registry file against the line's profile, or synthesize one."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from personalization.applications.intake import IntakeResult, InvalidRecord, read_applications
from personalization.batchimport import Checked, OnProgress, Progress, check_file
from personalization.journal import open_journal
from personalization.journal.registry_port import ReplayError
from personalization.profile import DocumentProfile
from personalization.service.errors import NotFound, ServiceError
from personalization.service.registry import RegistryRefused, receive
from personalization.service.setup import LineSetup
from personalization.synth import Synthesized, synthesize, synthesize_renewals

__all__ = ["Checked", "IntakeResult", "InvalidRecord", "OnProgress", "Progress", "Synthesized",
           "check_applications", "read_intake", "synthesize_applications",
           "synthesize_renewals_of"]


def check_applications(path: Path, setup: LineSetup, today: date, *,
                       workers: int | None = None, on_progress: OnProgress | None = None,
                       unsigned: bool = False) -> Checked:
    """Verify the registry's signature on ``path`` (and that its registry batch id was not
    received before), then check every record with the intake rules of the line's profile,
    on every core (``workers`` processes), counting the valid ones rather than keeping them.
    ``unsigned``: a plain JSON Lines file, on the embedded default only."""
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    try:
        with receive(setup.config, path, unsigned=unsigned) as got:
            if got.registry_id is not None:
                _not_replayed(setup, got.registry_id)
            checked = check_file(got.records, got.rules(setup.profile().intake_rules()), today,
                                 workers=workers, on_progress=on_progress, base=got.base)
            if got.opened is None:
                return checked
            return replace(checked, registry_batch=got.registry_id,
                           signer=got.opened.signer)
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror}") from exc


def _not_replayed(setup: LineSetup, registry_id: str) -> None:
    with open_journal(setup.config.journal.url) as journal:
        known = journal.received(registry_id)
        if known is not None and known.batch in {b.name for b in journal.batches()}:
            raise RegistryRefused(str(ReplayError(registry_id, known.batch)))


def read_intake(path: Path, profile: DocumentProfile, today: date,
                base: Path | None = None, *, photo_digests: bool = False) -> IntakeResult:
    """Check every record of a JSON Lines file with the intake rules of ``profile``
    (relative photo paths resolve in ``base``, by default the file's folder)."""
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    try:
        rules = replace(profile.intake_rules(), photo_digests=photo_digests)
        return read_applications(path, rules, today, base)
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror}") from exc


def synthesize_applications(count: int, seed: int, out: Path, *,
                            inline_photos: bool = False,
                            registry_batch: str | None = None) -> Synthesized:
    """Write ``count`` synthetic applications (drawn faces of no real person) to ``out``."""
    try:
        return synthesize(count, seed, out, inline_photos=inline_photos,
                          registry_batch=registry_batch)
    except OSError as exc:
        raise ServiceError(f"cannot write {out}: {exc.strerror}") from exc


def synthesize_renewals_of(setup: LineSetup, batch: str, seed: int, out: Path, *,
                           registry_batch: str | None = None) -> Synthesized:
    """Renewal applications for every person whose card batch ``batch`` handed out and who
    still holds it (each names that card), issued today: for demos and tests."""
    with open_journal(setup.config.journal.url) as journal:
        cards = [(card.id, card.holder) for card in journal.cards(batch)
                 if card.state.value == "handed_out" and card.holder]
    if not cards:
        raise ServiceError(f"batch {batch!r} has no handed-out card that is still current: "
                           "nothing to renew")
    try:
        return synthesize_renewals(cards, seed, out, issue=date.today(),
                                   registry_batch=registry_batch)
    except OSError as exc:
        raise ServiceError(f"cannot write {out}: {exc.strerror}") from exc
