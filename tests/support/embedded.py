"""The shipped line.yaml, moved into a test's folder: its data_dir (token, journal, stand-in
registry) under ``tmp/data``, other lines of it changed as a test needs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def embedded_line(tmp: Path, changes: dict[str, str] | None = None) -> Path:
    """``tmp/line.yaml``: the embedded default with everything it keeps under ``tmp/data``
    (the registry it trusts is the stand-in `keys setup-embedded` makes there); each key of
    ``changes`` is a text of line.yaml replaced by its value."""
    data = tmp / "data"
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    for old, new in {
        "data_dir: .cardline": f"data_dir: {data}",
        "softhsm_conf: .cardline/softhsm/softhsm2.conf":
            f"softhsm_conf: {data / 'softhsm' / 'softhsm2.conf'}",
        "url: sqlite:///.cardline/journal.db": f"url: sqlite:///{data / 'journal.db'}",
        "trust: [.cardline/registry/demo-registry.pem]":
            f"trust: [{data / 'registry' / 'demo-registry.pem'}]",
        **(changes or {}),
    }.items():
        assert old in text, f"line.yaml no longer has {old!r}"
        text = text.replace(old, new)
    (tmp / "line.yaml").write_text(text, encoding="utf-8")
    return tmp / "line.yaml"
