"""Owner-only files: 0600 whatever the umask or the mode of the file they replace."""

from __future__ import annotations

import os
from pathlib import Path

from common.files import write_private


def test_a_private_file_is_the_owners_alone_and_whole(tmp_path: Path) -> None:
    """Under umask 000, and over an older file left 0644, the file ends 0600 with the new
    text and no temporary file beside it."""
    path = tmp_path / "secret.pass"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(0o644)
    previous = os.umask(0)
    try:
        write_private(path, "new passphrase\n")
        write_private(tmp_path / "fresh", "x")
    finally:
        os.umask(previous)
    assert path.read_text(encoding="utf-8") == "new passphrase\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "secret.pass"]
