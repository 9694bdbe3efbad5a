"""A DS revoked by the officers while a batch runs: the line stops with the reason, the cards
after it are signed by the successor, the CRL lists the revoked DS and `keys affected` names
the cards it signed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest

from hsm import ceremony
from hsm.certificates import load_certificate
from hsm.crl import crl_revoked_serials
from hsm.inventory import KeyInventory
from hsm.pkcs11 import HSM
from personalization.line.controller import LineController
from tests.personalization.line.conftest import Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow]
# enough cards that the line is still running when the officers' command (a new process,
# two passphrase checks, then the signers' one-second status read) has revoked the DS
CARDS = 30


def _cardline(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "personalization", *args, "--config",
                           str(rig.line_yaml())], env=rig.cli_env(), capture_output=True,
                          text=True, timeout=120, check=False)


def _serial(der: bytes) -> str:
    return f"{int(load_certificate(der).serial_number):x}"


def test_a_ds_revoked_during_a_batch(rig: Rig) -> None:
    """Revoked once three cards are out: the run stops naming the revoked key; the officers make
    a successor and the batch resumes to the end on it; every card is accounted for."""
    rig.batch(CARDS)
    inventory_path = rig.hsm.data_dir / "hsm" / "inventory.db"
    with KeyInventory(inventory_path) as inventory:
        old = inventory.active("DS")
    assert old is not None
    rig.line_yaml()  # enrols the rig's crew
    officers = [arg for name in ("tess", "olga")
                for arg in ("--officer", f"{name}:{rig.root / 'people' / f'{name}.pass'}")]
    revoked: list[subprocess.CompletedProcess[str]] = []
    officers_at_work = threading.Thread(target=lambda: revoked.append(_cardline(
        rig, "keys", "revoke-ds", old.label, "--reason", "keyCompromise", *officers)))

    def revoke_after_three(controller: LineController) -> None:
        done = sum(1 for c in rig.journal.cards("B1") if c.state.value == "handed_out")
        if done >= 3 and officers_at_work.ident is None:  # once, beside the running line
            officers_at_work.start()

    first = rig.controller().run(on_tick=revoke_after_three)
    officers_at_work.join()
    assert revoked and revoked[0].returncode == 0, revoked[0].stderr
    assert not first.finished, "the batch ended before the revocation reached the line"
    assert any("revoked" in e for e in first.errors), first.errors

    now = datetime.now(UTC)
    with HSM(rig.hsm.module, rig.hsm.token, rig.hsm.pin) as hsm, \
            KeyInventory(inventory_path) as inventory:
        successor = ceremony.new_ds(hsm, inventory, officers=("tess", "olga"), at=now,
                                    usage_days=30, max_documents=1000,
                                    label_prefix="DS-SUCCESSOR")
        crl = ceremony.issue_crl(hsm, inventory, officers=("tess", "olga"), at=now, number=1)
    assert crl_revoked_serials(crl) == {int(_serial(old.certificate), 16): "keyCompromise"}

    second = rig.controller().run()
    assert second.finished, second.errors
    cards = [c for c in rig.journal.cards("B1") if c.state.value == "handed_out"]
    assert len(cards) == CARDS
    by_serial: dict[str | None, list[str]] = {}
    for card in cards:
        by_serial.setdefault((card.qa or {}).get("ds_serial"), []).append(card.document_number)
    assert set(by_serial) == {_serial(old.certificate), _serial(successor.certificate)}
    assert len(by_serial[_serial(old.certificate)]) >= 3
    listed = _cardline(rig, "keys", "affected", old.label, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["documents"] == sorted(by_serial[_serial(old.certificate)])
