"""`--help` reads as prose: docstrings hard-wrapped in the source are reflowed, so on a wide
terminal every command's summary is one line, never broken where the source broke it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GROUPS = ["", "applications", "keys", "printers", "line", "qa", "batch", "db"]  # bench: one command


def _help(group: str) -> str:
    argv = [sys.executable, "-m", "personalization", *group.split(), "--help"]
    done = subprocess.run(argv, env={**os.environ, "COLUMNS": "2000", "TERM": "dumb"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("group", GROUPS)
def test_each_command_summary_is_one_line_on_a_wide_terminal(group: str) -> None:
    """In the Commands panel no row is a continuation (an empty command column)."""
    text = _help(group)
    panel = text.split("Commands", 1)[1].split("╰", 1)[0].splitlines()[1:]
    rows = [line for line in panel if line.startswith("│")]
    assert rows
    continuations = [line for line in rows if line[1:].lstrip() and line[1:3] == "  "
                     and line[3] == " "]
    assert not continuations, "\n".join(continuations)
