"""The applications service called directly: a file checked against the line's profile."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from personalization.errors import ConfigError
from personalization.service.applications import check_applications, synthesize_applications
from personalization.service.errors import NotFound
from personalization.service.setup import LineSetup

ROOT = Path(__file__).resolve().parents[3]
TODAY = date(2026, 11, 24)


def _with_one_bad(tmp_path: Path) -> Path:
    """Three synthesized applications, then a copy of the first with a wrong personal id."""
    path = synthesize_applications(3, 5, tmp_path / "apps.jsonl").path
    bad = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    bad.update(application_id="BAD-1", personal_id="999000000000")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(bad, ensure_ascii=False) + "\n")
    return path


def test_one_bad_record_is_listed_and_the_others_pass(tmp_path: Path) -> None:
    """The bad record comes back with its line, id and field; the three good ones are valid."""
    result = check_applications(_with_one_bad(tmp_path), LineSetup.load(ROOT / "line.yaml"),
                                TODAY, unsigned=True)
    assert result.valid == 3
    assert [(r.line, r.application_id) for r in result.invalid] == [(4, "BAD-1")]
    assert "personal_id" in {error.field for error in result.invalid[0].errors}


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    """A file that does not exist raises NotFound naming it."""
    with pytest.raises(NotFound, match=r"no-such\.jsonl: no such file"):
        check_applications(tmp_path / "no-such.jsonl", LineSetup.load(ROOT / "line.yaml"), TODAY)


def test_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    """A line whose profile file cannot be read raises the ConfigError naming the profile."""
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    (tmp_path / "line.yaml").write_text(text.replace("profile: cccd", "profile: nope.yaml"),
                                        encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        check_applications(_with_one_bad(tmp_path), LineSetup.load(tmp_path / "line.yaml"),
                           TODAY, unsigned=True)
