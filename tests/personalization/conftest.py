"""Fixtures for the line-controller tests: a synthesized application file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from personalization.applications.intake import IntakeRules
from personalization.applications.photo import PhotoSpec
from personalization.synth import synthesize

TODAY_ISO = "2026-11-24"


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve synthesized applications with photo files, shared read-only by the tests."""
    out = tmp_path_factory.mktemp("synth") / "apps.jsonl"
    synthesize(12, 42, out)
    return out.parent


@pytest.fixture()
def policy() -> IntakeRules:
    """The CCCD intake rules (DG2 360×480 within 15 000 bytes)."""
    return IntakeRules(photo=PhotoSpec(360, 480, 15_000, 240, 320))


@pytest.fixture()
def good_record(synth_dir: Path) -> dict[str, Any]:
    """One valid record (a copy the test may change)."""
    line = (synth_dir / "apps.jsonl").read_text(encoding="utf-8").splitlines()[0]
    record: dict[str, Any] = json.loads(line)
    return record
