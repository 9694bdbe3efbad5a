"""`cardline keys` for the EAC PKI end to end on an embedded SoftHSM line: eac-init under a
quorum, export-cvca, issue-is for an openssl-made key and its refusals, eac-rollover, `keys
list`, and the QA desk's terminal key from the service layer."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from applets.emrtd import cvc
from applets.emrtd.cvc import CVCertificate, ISRights
from common import curves
from hsm.pkcs11 import release_module
from hsm.softhsm import softhsm_module
from personalization.config import load_config
from personalization.service import eac
from personalization.service.keys import open_inventory
from tests.support.crew import enrol, keys_cli, officer_args

pytestmark = pytest.mark.softhsm
MODULE = str(softhsm_module())
LINE_YAML = """\
line: eac-line
data_dir: data
journal:
  url: sqlite:///data/journal.db
hsm:
  module: {module}
  token: eac-test
  pin_source: embedded
  softhsm_conf: data/softhsm/softhsm2.conf
  csca_label: CSCA-VNM
eac:
  is_days: 30
"""


@pytest.fixture
def line_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A line with its embedded token, its crew (tess acting) and a CSCA made by `keys init`."""
    path = tmp_path / "line.yaml"
    path.write_text(LINE_YAML.format(module=MODULE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    crew = enrol(path)
    for key, value in crew.env("tess", {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOFTHSM2_CONF", "/nonexistent")  # restored after the CLI overwrites it
    release_module(MODULE)
    assert keys_cli("setup-embedded", "-c", str(path))[0] == 0
    code, out = keys_cli("init", "-c", str(path), *officer_args(path))
    assert code == 0, out
    yield path
    release_module(MODULE)


def _openssl_public_key(folder: Path, curve: str) -> Path:
    private, public = folder / f"{curve}.key", folder / f"{curve}.pub.pem"
    subprocess.run(["openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out",
                    str(private)], check=True, capture_output=True)
    subprocess.run(["openssl", "ec", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True)
    return public


def _cvc_print(path: Path, trust: Path) -> str:
    done = subprocess.run(["cvc-print", "--cvc", str(path), "--cvc-dir", str(trust)],
                          capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


def _trust(folder: Path, *files: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for file in files:
        cert = CVCertificate.decode(file.read_bytes())
        (folder / str(cert.body.chr)).write_bytes(file.read_bytes())
    return folder


def _eac_audit(line_yaml: Path) -> list[str]:
    with open_inventory(load_config(line_yaml)) as inventory:
        return [e.action for e in inventory.audit_trail() if e.action not in ("init-csca",)]


def test_eac_keys_end_to_end(line_yaml: Path, tmp_path: Path) -> None:
    """eac-init makes CVCA, DV and QA IS (listed), export-cvca writes a certificate cvc-print
    verifies, issue-is certifies an openssl key for DG3 under the DV, the QA signer verifies
    under its certificate, and eac-rollover's link verifies under the old CVCA."""
    config = ["-c", str(line_yaml)]
    code, out = keys_cli("eac-init", *config, *officer_args(line_yaml))
    assert code == 0, out
    code, out = keys_cli("list", *config, "--json")
    assert [(r["role"], r["status"]) for r in json.loads(out)] == [
        ("CSCA", "active"), ("CVCA", "active"), ("DV", "active"), ("IS", "active")]
    code, out = keys_cli("export-cvca", *config, "--out", "cvca.cvcert")
    assert code == 0, out
    text = _cvc_print(tmp_path / "cvca.cvcert", _trust(tmp_path / "t0", tmp_path / "cvca.cvcert"))
    assert "CVCA certificate" in text and "certificate verified" in text

    public = _openssl_public_key(tmp_path, "brainpoolP256r1")
    code, out = keys_cli("issue-is", *config, *officer_args(line_yaml), "--public-key",
                         str(public), "--rights", "dg3", "--days", "30", "--out", "lab")
    assert code == 0, out
    lab = tmp_path / "lab"
    assert sorted(p.name for p in lab.iterdir()) == ["cvca.cvcert", "dv.cvcert", "is.cvcert"]
    assert (lab / "cvca.cvcert").read_bytes() == (tmp_path / "cvca.cvcert").read_bytes()
    dv, issued = (CVCertificate.decode((lab / n).read_bytes()) for n in ("dv.cvcert", "is.cvcert"))
    assert issued.body.chat.rights is ISRights.DG3 and issued.body.car == dv.body.chr
    cvc.verify(issued, dv.body.public_key.point, curves.BRAINPOOL_P256R1)
    text = _cvc_print(lab / "is.cvcert", _trust(tmp_path / "t1", lab / "cvca.cvcert",
                                                lab / "dv.cvcert"))
    assert "certificate verified" in text and "Read fingerprint" in text
    assert "Read iris" not in text

    with eac.qa_terminal(load_config(line_yaml)) as terminal:
        assert terminal.chain[:2] == ((lab / "cvca.cvcert").read_bytes(),
                                      (lab / "dv.cvcert").read_bytes())
        qa = CVCertificate.decode(terminal.chain[2])
        signature = terminal.sign(b"challenge")
    cvc.verify_plain(qa.body.public_key.point, terminal.curve, qa.body.public_key.oid,
                     b"challenge", signature)

    code, out = keys_cli("eac-rollover", *config, *officer_args(line_yaml), "--out", "rolled")
    assert code == 0, out
    link = CVCertificate.decode((tmp_path / "rolled" / "link.cvcert").read_bytes())
    old = CVCertificate.decode((tmp_path / "cvca.cvcert").read_bytes())
    cvc.verify(link, old.body.public_key.point, curves.BRAINPOOL_P256R1)
    assert link.body.public_key.point == CVCertificate.decode(
        (tmp_path / "rolled" / "cvca.cvcert").read_bytes()).body.public_key.point
    assert _eac_audit(line_yaml) == ["init-cvca", "new-dv", "new-qa-is", "issue-is",
                                     "rollover-cvca", "new-dv", "new-qa-is"]


def test_eac_refusals(line_yaml: Path, tmp_path: Path) -> None:
    """One officer cannot make the EAC keys; issue-is refuses too many days, a right other
    than dg3/dg4, a key on another curve and a lone officer; nothing is written or audited."""
    config = ["-c", str(line_yaml)]
    code, out = keys_cli("eac-init", *config, *officer_args(line_yaml, "tess"))
    assert code != 0 and "needs 2 different officers" in out
    assert _eac_audit(line_yaml) == []
    assert keys_cli("eac-init", *config, *officer_args(line_yaml))[0] == 0
    good = _openssl_public_key(tmp_path, "brainpoolP256r1")
    other = _openssl_public_key(tmp_path, "prime256v1")
    attempts = {
        "1 to 30 days (eac.is_days)": (good, "dg3", "31", officer_args(line_yaml)),
        "'dg9' is not one": (good, "dg3,dg9", "10", officer_args(line_yaml)),
        "the CVCA's curve is brainpoolP256r1": (other, "dg3", "10", officer_args(line_yaml)),
        "needs 2 different officers": (good, "dg3", "10", officer_args(line_yaml, "tess")),
    }
    for message, (key, rights, days, officers) in attempts.items():
        code, out = keys_cli("issue-is", *config, *officers, "--public-key", str(key),
                             "--rights", rights, "--days", days, "--out", "refused")
        assert code != 0 and message in " ".join(out.split()), (message, out)
    assert not (tmp_path / "refused").exists()
    assert "issue-is" not in _eac_audit(line_yaml)
    code, out = keys_cli("eac-init", *config, *officer_args(line_yaml))
    assert code != 0 and "an active CVCA exists already" in out
