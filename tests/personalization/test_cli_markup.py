"""Names an operator types are shown as typed: a batch named like Rich markup neither crashes
the CLI nor changes what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.crew import enrol


@pytest.mark.parametrize("name", ["[/]", "[bold]B1", "[red]x[/red]"])
def test_a_batch_named_like_markup_is_an_ordinary_error(tmp_path: Path, name: str) -> None:
    """`batch status` and `batch report` for such a name exit 2 with 'no batch named' and the
    name as typed; no traceback."""
    config = tmp_path / "line.yaml"
    config.write_text(f"line: t\ndata_dir: {tmp_path}\n"
                      "hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: t}\n"
                      f"journal: {{url: 'sqlite:///{tmp_path / 'journal.db'}'}}\n",
                      encoding="utf-8")
    env = enrol(config).env("aud", {**os.environ, "COLUMNS": "200"})  # reports: an auditor
    for verb in ("status", "report"):
        done = subprocess.run([sys.executable, "-m", "personalization", "batch", verb, name,
                               "--config", str(config)], capture_output=True, text=True,
                              timeout=60, check=False, env=env)
        assert done.returncode == 2, done.stderr
        said = " ".join(done.stderr.split())
        assert "no batch named" in said and name in said and "Traceback" not in said
