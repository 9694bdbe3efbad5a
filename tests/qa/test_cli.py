"""`cardline qa` operational errors that need no reader: exit 2 with a message saying what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from personalization.cli import main; main()", "qa", *args],
        capture_output=True, text=True, cwd=cwd, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "200"})


def test_missing_keys_exit_2(tmp_path: Path) -> None:
    """Without --mrz or the three fields the command says which keys to give."""
    result = _cli("verify", "--reader", "R", "--document-number", "1", "--trust", "x.pem")
    assert result.returncode == 2 and "--mrz" in result.stderr


def test_bad_mrz_exit_2() -> None:
    """A typed MRZ that does not parse is refused before the reader is touched."""
    result = _cli("verify", "--reader", "R", "--mrz", "I<UTO123", "--trust", "x.pem")
    assert result.returncode == 2 and "MRZ" in result.stderr


def test_no_trust_store_says_how_to_export(tmp_path: Path) -> None:
    """Without --trust and without <data_dir>/csca.pem the hint names `keys export-csca`."""
    result = _cli("verify", "--reader", "R", "--document-number", "093047064", "--birth",
                  "930105", "--expiry", "330105", cwd=tmp_path)
    assert result.returncode == 2 and "export-csca" in result.stderr


def test_help_explains_itself() -> None:
    """`cardline qa --help` lists verify, dump and report."""
    result = _cli("--help")
    assert result.returncode == 0
    assert all(name in result.stdout for name in ("verify", "dump", "report"))
