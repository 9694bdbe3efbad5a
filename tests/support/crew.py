"""The people of a test line: accounts made through the service layer (as `cardline users`
makes them) in the journal a configuration names, with owner-only passphrase files, and the
environment a `cardline` subprocess acts with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.files import write_private
from personalization.config import LineConfig, load_config
from personalization.service import people

# tess does the day's work of every role but admin (an admin holds no other role); olga is
# the second officer of each ceremony; the others hold one role each, for refusal tests
ROLES: Mapping[str, tuple[str, ...]] = {
    "tess": ("operator", "qa", "officer", "auditor"),
    "olga": ("officer",),
    "oscar": ("officer",),
    "an": ("operator",),
    "quy": ("qa",),
    "aud": ("auditor",),
}
ADMIN = "root"


def passphrase(name: str) -> str:
    """A test account's passphrase (policy: at least 12 characters, not the name)."""
    return f"{name} keeps a long passphrase"


@dataclass(frozen=True)
class Crew:
    """The accounts of one test line and where their passphrase files are."""

    config: LineConfig
    folder: Path

    def file(self, name: str) -> Path:
        """``name``'s passphrase file (0600)."""
        return self.folder / f"{name}.pass"

    def env(self, name: str = "tess", base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment acting as ``name`` (CARDLINE_USER + CARDLINE_PASSPHRASE)."""
        return {**(os.environ if base is None else base), "CARDLINE_USER": name,
                "CARDLINE_PASSPHRASE": passphrase(name)}

    def officers(self, *names: str) -> list[str]:
        """``--officer NAME:FILE`` arguments of a ceremony (tess and olga by default)."""
        args: list[str] = []
        for name in names or ("tess", "olga"):
            args += ["--officer", f"{name}:{self.file(name)}"]
        return args


def enrol(config_path: Path, folder: Path | None = None) -> Crew:
    """Bootstrap the admin and add the crew in the journal of ``config_path``."""
    config = load_config(config_path)
    folder = folder or config_path.parent / "people"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (ADMIN, *ROLES):
        write_private(folder / f"{name}.pass", passphrase(name) + "\n")
    admin = people.bootstrap(config, ADMIN, passphrase(ADMIN))
    for name, roles in ROLES.items():
        people.add(config, admin, name, roles, passphrase(name))
    return Crew(config, folder)


def keys_cli(*args: str) -> tuple[int, str]:
    """``cardline keys ARGS`` in this process: exit code and output."""
    from typer.testing import CliRunner

    from personalization.cli import app

    result = CliRunner().invoke(app, ["keys", *args])
    return result.exit_code, result.output


def officer_args(line_yaml: Path, *names: str) -> list[str]:
    """``--officer NAME:PASSFILE`` for each officer (tess and olga by default), with the
    passphrase files ``enrol`` wrote beside ``line_yaml``."""
    return [arg for name in names or ("tess", "olga")
            for arg in ("--officer", f"{name}:{line_yaml.parent / 'people' / f'{name}.pass'}")]
