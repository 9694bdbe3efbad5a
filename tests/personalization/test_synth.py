"""Synthesized applications: deterministic for a seed, different across seeds."""

from __future__ import annotations

from pathlib import Path

from personalization.synth import synthesize


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    """Two runs with one seed write identical records and identical photos."""
    a = synthesize(5, 3, tmp_path / "a" / "apps.jsonl")
    b = synthesize(5, 3, tmp_path / "b" / "apps.jsonl")
    assert a.path.read_bytes() == b.path.read_bytes()
    for photo in (tmp_path / "a" / "apps-photos").iterdir():
        assert photo.read_bytes() == (tmp_path / "b" / "apps-photos" / photo.name).read_bytes()


def test_other_seed_other_people(tmp_path: Path) -> None:
    """A different seed gives different people."""
    a = synthesize(5, 3, tmp_path / "a.jsonl", inline_photos=True)
    b = synthesize(5, 4, tmp_path / "b.jsonl", inline_photos=True)
    assert a.path.read_text() != b.path.read_text()
