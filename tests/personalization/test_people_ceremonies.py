"""Who may do what, end to end through the `cardline` command: quorum ceremonies on the CSCA's
own token, the DS policy, refusals for the wrong role — each refusal audited, and a refused
ceremony never opening an HSM. Checked with openssl where there is something to check."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from hsm.softhsm import token_exists
from personalization.config import load_config
from personalization.service.keys import open_inventory
from tests.support.crew import Crew, enrol, passphrase
from tests.support.embedded import embedded_line

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]


def _line(tmp: Path) -> Path:
    return embedded_line(tmp, {"ec_parameters: explicit": "ec_parameters: named"})


def _cardline(tmp: Path, *args: str, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in (env or os.environ).items() if k != "SOFTHSM2_CONF"}
    base["COLUMNS"] = "400"  # messages on one line, as the assertions read them
    return subprocess.run([sys.executable, "-m", "personalization", *args], cwd=tmp, env=base,
                          capture_output=True, text=True, timeout=120, check=False)


def _events(tmp: Path) -> list[tuple[str, dict[str, object]]]:
    db = sqlite3.connect(tmp / "data" / "journal.db")
    try:
        return [(kind, json.loads(data)) for kind, data in
                db.execute("SELECT kind, data FROM events ORDER BY seq")]
    finally:
        db.close()


def _keys_in_inventory(tmp: Path) -> list[str]:
    with open_inventory(load_config(tmp / "line.yaml")) as inventory:
        return [record.label for record in inventory.all_keys()]


@pytest.fixture
def line(tmp_path: Path) -> Crew:
    """A line with its embedded token and its crew; no keys yet."""
    _line(tmp_path)
    assert _cardline(tmp_path, "keys", "setup-embedded").returncode == 0
    return enrol(tmp_path / "line.yaml")


def test_one_person_cannot_complete_a_ceremony_alone(line: Crew, tmp_path: Path) -> None:
    """The same officer twice, one officer (k-1), a wrong passphrase, a disabled officer, an
    acting officer not among the quorum, a non-officer in the quorum: each refused, audited,
    and the CSCA token never even created."""
    env = line.env("tess")
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not olga's passphrase at all\n", encoding="utf-8")
    wrong.chmod(0o600)
    attempts = {
        "needs 2 different officers; 1": line.officers("tess", "tess"),
        "needs 2 different officers": line.officers("tess"),
        "officer 'olga': unknown account or wrong passphrase":
            [*line.officers("tess"), "--officer", f"olga:{wrong}"],
        "must be one of its officers": line.officers("olga", "oscar"),
        "operator 'an' is not a security officer": line.officers("tess", "an"),
    }
    for message, officers in attempts.items():
        done = _cardline(tmp_path, "keys", "init", *officers, env=env)
        assert done.returncode != 0 and message in done.stderr, (message, done.stderr)
    disable = _cardline(tmp_path, "users", "disable", "olga", env=line.env("root"))
    assert disable.returncode == 0, disable.stderr
    done = _cardline(tmp_path, "keys", "init", *line.officers("tess", "olga"), env=env)
    assert done.returncode != 0 and "olga" in done.stderr
    config = load_config(tmp_path / "line.yaml")
    assert not token_exists(config.hsm.softhsm_conf, config.keys.csca_token)  # never opened
    assert _keys_in_inventory(tmp_path) == []
    refusals = [data for kind, data in _events(tmp_path) if kind == "people.refused"]
    assert len(refusals) >= len(attempts) + 1
    text = json.dumps(_events(tmp_path), ensure_ascii=False)
    assert passphrase("olga") not in text and "not olga's passphrase" not in text


def test_ceremonies_on_the_csca_token_under_a_quorum(line: Crew, tmp_path: Path) -> None:
    """init splits the CSCA token PIN among its officers; new-ds, revoke-ds, crl,
    export-master-list and rollover each need a quorum of share holders; the DS policy can be
    lowered, never raised; a re-split leaves a departed officer out; openssl verifies the CRL
    and the master list; every ceremony is an event naming its actor and officers."""
    env = line.env("tess")
    for args in (["keys", "init", *line.officers("tess", "olga", "oscar")],
                 ["keys", "new-ds", *line.officers("olga", "tess"), "--usage-days", "30"],
                 ["keys", "export-csca", "--out", "csca.pem"]):
        done = _cardline(tmp_path, *args, env=env)
        assert done.returncode == 0, (args, done.stderr)
    config = load_config(tmp_path / "line.yaml")
    assert token_exists(config.hsm.softhsm_conf, config.keys.csca_token)
    raised = _cardline(tmp_path, "keys", "new-ds", *line.officers("tess", "olga"),
                       "--max-documents", "999999999", env=env)
    assert raised.returncode != 0 and "may lower it, not raise it" in raised.stderr
    with open_inventory(config) as inventory:
        ds = inventory.active("DS")
        assert ds is not None and inventory.active("CSCA") is not None
        assert ds.not_after - ds.not_before == timedelta(days=30)
    done = _cardline(tmp_path, "keys", "revoke-ds", ds.label, "--reason", "keyCompromise",
                     *line.officers("tess", "oscar"), env=env)
    assert done.returncode == 0, done.stderr
    done = _cardline(tmp_path, "keys", "crl", "--out", "v.crl", *line.officers("tess", "olga"),
                     env=env)
    assert done.returncode == 0, done.stderr
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "v.crl"),
                           "-noout", "-text", "-CAfile", str(tmp_path / "csca.pem")],
                          capture_output=True, text=True, check=False)
    assert "verify OK" in text.stdout + text.stderr and "Key Compromise" in text.stdout
    # oscar leaves: the PIN is split again among tess and olga; oscar no longer opens it
    done = _cardline(tmp_path, "keys", "resplit", *line.officers("tess", "olga"), env=env)
    assert done.returncode == 0, done.stderr
    done = _cardline(tmp_path, "keys", "new-ds", *line.officers("tess", "oscar"), env=env)
    assert done.returncode != 0 and "holding a share" in done.stderr
    done = _cardline(tmp_path, "keys", "rollover", "--out", "rolled",
                     *line.officers("tess", "olga"), env=env)
    assert done.returncode == 0, done.stderr
    done = _cardline(tmp_path, "keys", "export-master-list", "--out", "ml.der",
                     *line.officers("olga", "tess"), env=line.env("olga"))
    assert done.returncode == 0, done.stderr
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "ml.der"),
         "-CAfile", str(tmp_path / "rolled" / "csca.pem"), "-purpose", "any",
         "-out", str(tmp_path / "ml-content.der")], capture_output=True, text=True, check=False)
    assert "Verification successful" in verified.stderr, verified.stderr
    kinds = [(kind, data.get("actor"), data.get("officers")) for kind, data in _events(tmp_path)
             if kind.startswith("keys.")]
    assert [k for k, _, _ in kinds] == [
        "keys.shares_split", "keys.csca_created", "keys.ds_created", "keys.ds_revoked",
        "keys.crl_issued", "keys.shares_split", "keys.csca_rolled_over",
        "keys.master_list_signed"]
    assert kinds[1][2] == ["tess", "olga", "oscar"] and kinds[-1][1] == "olga"


def test_each_role_only_what_it_may(line: Crew, tmp_path: Path) -> None:
    """An operator cannot run keys, users or prep; a QA account cannot create or run a batch;
    an admin cannot sign anything; nobody acts without an account — each with a clear
    message, each refusal audited."""
    apps = _cardline(tmp_path, "applications", "synth", "--count", "2", "--seed", "5", "--out",
                     "apps.jsonl")
    assert apps.returncode == 0, apps.stderr
    cases = [
        ("an", ["keys", "init", *line.officers("tess", "olga")], "may not run key ceremonies"),
        ("an", ["users", "add", "eve", "--role", "operator", "--passphrase-file",
                str(line.file("an"))], "may not manage accounts"),
        ("an", ["prep", "apps.jsonl", "--out", "out"], "may not sign chip data"),
        ("quy", ["batch", "create", "apps.jsonl", "--name", "B1"], "may not create batches"),
        ("quy", ["batch", "run", "B1"], "may not run batches"),
        ("root", ["prep", "apps.jsonl", "--out", "out"], "may not sign chip data"),
        ("root", ["keys", "new-ds", *line.officers("tess", "olga")], "may not run key"),
        ("aud", ["line", "up"], "may not start the line"),
    ]
    for who, args, message in cases:
        done = _cardline(tmp_path, *args, env=line.env(who))
        assert done.returncode != 0 and message in done.stderr, (who, args, done.stderr)
    anonymous = {k: v for k, v in os.environ.items()
                 if k not in ("CARDLINE_USER", "CARDLINE_PASSPHRASE")}
    done = _cardline(tmp_path, "batch", "create", "apps.jsonl", "--name", "B1", env=anonymous)
    assert done.returncode != 0 and "cardline login" in done.stderr
    assert not (tmp_path / "out").exists()
    refused = [(d.get("actor"), d.get("action")) for k, d in _events(tmp_path)
               if k == "people.refused"]
    assert ("an", "keys.ceremony") in refused and ("root", "prep.sign") in refused
    assert ("quy", "batch.create") in refused


def test_prep_signs_only_for_an_officer_and_is_audited(line: Crew, tmp_path: Path) -> None:
    """`prep` run by an officer signs and leaves an event naming the officer, the DS and the
    input's digest — never a record of it."""
    env = line.env("tess")
    for args in (["keys", "init", *line.officers()], ["keys", "new-ds", *line.officers()],
                 ["applications", "synth", "--count", "3", "--seed", "9", "--out", "a.jsonl"],
                 ["prep", "a.jsonl", "--out", "out", "--unsigned"]):  # embedded default
        done = _cardline(tmp_path, *args, env=env)
        assert done.returncode == 0, (args, done.stderr)
    signed = [d for k, d in _events(tmp_path) if k == "prep.signed"]
    assert len(signed) == 1 and signed[0]["actor"] == "tess" and signed[0]["prepared"] == 3
    assert len(str(signed[0]["source_sha256"])) == 64
    names = [json.loads(line_)["full_name"] for line_ in
             (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert not any(name in json.dumps(_events(tmp_path), ensure_ascii=False) for name in names)
