"""`cardline keys` end to end on a temporary line.yaml and an embedded SoftHSM token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsm import certificates as certs
from hsm.pkcs11 import release_module
from tests.support.crew import enrol, keys_cli, officer_args

from .conftest import MODULE

pytestmark = pytest.mark.softhsm
LINE_YAML = """\
line: test-line
data_dir: data
journal:
  url: sqlite:///data/journal.db
hsm:
  module: {module}
  token: cli-test
  pin_source: embedded
  softhsm_conf: data/softhsm/softhsm2.conf
  csca_label: CSCA-VNM
  ds_label_prefix: DS-VNM
  ds_max_documents: 5
  ds_usage_days: 30
"""


@pytest.fixture
def line_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A line.yaml whose embedded token lives under tmp_path, its crew acting as tess."""
    path = tmp_path / "line.yaml"
    path.write_text(LINE_YAML.format(module=MODULE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the journal URL is relative to line.yaml's folder
    crew = enrol(path)
    for key, value in crew.env("tess", {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOFTHSM2_CONF", "/nonexistent")  # restored after the CLI overwrites it
    release_module(MODULE)
    yield path
    release_module(MODULE)


def test_keys_ceremonies_end_to_end(line_yaml: Path, tmp_path: Path) -> None:
    """setup-embedded, init, new-ds, list --json and export-csca work together."""
    config = ["-c", str(line_yaml)]
    assert keys_cli("setup-embedded", *config)[0] == 0
    code, out = keys_cli("init", *config, *officer_args(line_yaml))
    assert code == 0, out
    code, out = keys_cli("new-ds", *config, *officer_args(line_yaml))
    assert code == 0, out
    code, out = keys_cli("list", *config, "--json")
    rows = json.loads(out)
    assert [(r["role"], r["status"]) for r in rows] == [("CSCA", "active"), ("DS", "active")]
    assert rows[1]["max_documents"] == 5 and rows[1]["label"].startswith("DS-VNM-")
    pem_path = tmp_path / "csca.pem"
    assert keys_cli("export-csca", *config, "--out", str(pem_path))[0] == 0
    assert certs.is_ca(_pem_to_der(pem_path.read_text()))


def _pem_to_der(text: str) -> bytes:
    from asn1crypto import pem
    _, _, der = pem.unarmor(text.encode("ascii"))
    return bytes(der)


def test_single_officer_fails_with_one_line(line_yaml: Path) -> None:
    """init with one officer exits non-zero with a clear message and creates no key."""
    config = ["-c", str(line_yaml)]
    keys_cli("setup-embedded", *config)
    code, out = keys_cli("init", *config, *officer_args(line_yaml, "tess"))
    assert code != 0 and "needs 2 different officers" in out
    code, out = keys_cli("list", *config, "--json")
    assert json.loads(out) == []


def test_new_ds_without_csca_fails_cleanly(line_yaml: Path) -> None:
    """new-ds before init exits non-zero and tells the officer to run `keys init`."""
    config = ["-c", str(line_yaml)]
    keys_cli("setup-embedded", *config)
    code, out = keys_cli("new-ds", *config, *officer_args(line_yaml))
    assert code != 0 and "keys init" in out


def test_help_explains_each_command() -> None:
    """Every keys command has a --help text."""
    for command in ("setup-embedded", "init", "new-ds", "revoke-ds", "crl", "export-master-list",
                    "rollover", "resplit", "affected", "list", "export-csca"):
        code, out = keys_cli(command, "--help")
        assert code == 0 and "Usage" in out
