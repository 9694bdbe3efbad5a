"""Approved applications: check a registry file against the line's profile, or synthesize one."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from personalization.applications.intake import IntakeResult, InvalidRecord, read_applications
from personalization.batchimport import Checked, OnProgress, Progress, check_file
from personalization.profile import DocumentProfile
from personalization.service.errors import NotFound, ServiceError
from personalization.service.setup import LineSetup
from personalization.synth import Synthesized, synthesize

__all__ = ["Checked", "IntakeResult", "InvalidRecord", "OnProgress", "Progress", "Synthesized",
           "check_applications", "read_intake", "synthesize_applications"]


def check_applications(path: Path, setup: LineSetup, today: date, *,
                       workers: int | None = None,
                       on_progress: OnProgress | None = None) -> Checked:
    """Check every record of a JSON Lines file with the intake rules of the line's profile,
    on every core (``workers`` processes), counting the valid ones rather than keeping them."""
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    try:
        return check_file(path, setup.profile().intake_rules(), today, workers=workers,
                          on_progress=on_progress)
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror}") from exc


def read_intake(path: Path, profile: DocumentProfile, today: date) -> IntakeResult:
    """Check every record of a JSON Lines file with the intake rules of ``profile``."""
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    try:
        return read_applications(path, profile.intake_rules(), today)
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror}") from exc


def synthesize_applications(count: int, seed: int, out: Path, *,
                            inline_photos: bool = False) -> Synthesized:
    """Write ``count`` synthetic applications (drawn faces of no real person) to ``out``."""
    try:
        return synthesize(count, seed, out, inline_photos=inline_photos)
    except OSError as exc:
        raise ServiceError(f"cannot write {out}: {exc.strerror}") from exc
