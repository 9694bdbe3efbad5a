"""A printed random CAN survives the controller's death: ``cardline batch run`` on the
printed-random test profile is SIGKILLed once the card's chip is written, and ``batch resume``
settles that card with the CAN kept in the journal — QA opens the chip by PACE with it, and
the face printed shows the CAN the chip holds."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageChops

from applets.virtual.bank import EncoderBank
from applets.virtual.store import SUFFIX, load_memory
from personalization.applications.model import Application
from personalization.benchkit import bench_hsm
from personalization.face import card_face, card_layout
from personalization.journal import Journal
from personalization.journal.records import CardRow
from personalization.prep import build_mrz
from personalization.profile import load_profile
from personalization.service.eacline import bench_pki
from personalization.simline import PrinterLine
from printers.face import render_card
from printers.panels import Composer
from tests.personalization.line.conftest import (
    BLANKS,
    ENCODERS_USED,
    STATIONS,
    Rig,
    empty_encoders,
)

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow, pytest.mark.timeout(600)]
PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "cccd-can.yaml"
CARDLINE = [sys.executable, "-m", "personalization"]


@pytest.fixture()
def can_rig(encoder_bank: EncoderBank, tmp_path: Path) -> Iterator[Rig]:
    """The line rig on the printed-random test profile, its token holding the EAC PKI (the
    chips' CVCA, a DV and the QA desk's inspection-system key) as ``keys eac-init`` makes it."""
    printers = PrinterLine(tmp_path / "line", STATIONS, encoder_bank.host_socket,
                           encoder_bank.chips_dir, blanks=BLANKS)
    with printers, bench_hsm(tmp_path, eac=bench_pki) as hsm, \
            Journal(tmp_path / "journal.db") as journal:
        yield Rig(encoder_bank, printers, hsm, load_profile(str(PROFILE)), journal, tmp_path)
    empty_encoders(encoder_bank, range(ENCODERS_USED))


def _config(rig: Rig) -> Path:
    """The rig's line.yaml on the printed-random profile (the rig's own says cccd-bac)."""
    config = yaml.safe_load(rig.line_yaml().read_text(encoding="utf-8"))
    config["profile"] = str(PROFILE)
    path = rig.root / "line-can.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _cardline(rig: Rig, config: Path, verb: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([*CARDLINE, "batch", verb, "B1", "--config", str(config)],
                                env={**rig.cli_env(), "CARDLINE_LOG_LEVEL": "INFO"},
                                stdout=sink, stderr=sink, stdin=subprocess.DEVNULL)


def _killed_once_verifying(rig: Rig, config: Path, log: Path) -> CardRow:
    """Run the batch and SIGKILL the controller the moment a card's chip is written (its
    card journaled as verifying); the card in doubt."""
    process = _cardline(rig, config, "run", log)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            verifying = [c for c in rig.journal.cards("B1") if c.state.value == "verifying"]
            if verifying:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-3000:]
    [card] = rig.journal.open_cards("B1")
    assert card.state.value in ("verifying", "printing"), card.state  # chip written, unprinted
    return card


def _chip_can(rig: Rig, serial: str) -> str | None:
    """The CAN the virtual chip itself holds (its PACE password), read from the chip store."""
    path = rig.bank.chips_dir / f"{serial}{SUFFIX}"
    return load_memory(serial, path.read_bytes()).pace_can


def _printed_front(rig: Rig, serial: str) -> Image.Image:
    """The front the station's printer printed last on this chip's card."""
    fronts = sorted(rig.printers.state_dir.rglob(f"*-{serial}-front.png"),
                    key=lambda p: p.stat().st_mtime_ns)
    assert fronts, f"no front printed for chip {serial}"
    with Image.open(fronts[-1]) as image:
        return image.convert("RGB")


def _front(rig: Rig, application: Application, can: str) -> Image.Image:
    """The front as the printer composes it for this application with this CAN."""
    face = card_face(application, build_mrz(application, rig.profile), rig.profile, can=can)
    panels = render_card(face, card_layout(rig.profile)).panels("front")
    return Composer().compose(panels, "front").convert("RGB")


@pytest.mark.parametrize("journaled", ["verifying", "encoding"])
def test_a_card_in_doubt_is_settled_with_the_can_its_chip_holds(
        can_rig: Rig, journaled: str) -> None:
    """Killed after the chip is written: the journal kept the card's CAN, which is the chip's;
    ``batch resume`` settles that same card with it (QA by PACE passes, no retry on a new
    blank) and its printed front shows that CAN. With ``encoding`` the journal is put back to
    before ENCODED was written (a kill between the last APDU and that write), so the resume
    reads the chip back (``_chip_check``) before QA."""
    rig = can_rig
    [application] = rig.batch(1)
    config, log = _config(rig), rig.root / "controller.log"
    card = _killed_once_verifying(rig, config, log)
    kept = rig.journal.card_access_number("B1", card.id)
    assert card.chip_serial is not None and kept is not None
    assert _chip_can(rig, card.chip_serial) == kept
    if journaled == "encoding":
        assert card.state.value == "verifying", card.state
        _set_state(rig, card.id, "encoding")
    resumed = _cardline(rig, config, "resume", log)
    assert resumed.wait(timeout=300) == 0, log.read_text(errors="replace")[-3000:]

    cards = rig.journal.cards("B1")  # the same card: settled, not spoiled and retried
    assert len(cards) == 1, [(c.id, c.state.value, c.reasons) for c in cards]
    [done] = cards
    assert (done.id, done.state.value, done.chip_serial) == (card.id, "handed_out",
                                                              card.chip_serial)
    assert done.qa is not None and done.qa["verdict"] == "pass", done.qa
    assert done.qa["protocols"][0] == "PACE"
    printed = _printed_front(rig, card.chip_serial)
    assert ImageChops.difference(printed, _front(rig, application, kept)).getbbox() is None
    other = f"{(int(kept) + 1) % 10 ** 6:06d}"
    assert ImageChops.difference(printed, _front(rig, application, other)).getbbox()


def _set_state(rig: Rig, card_id: int, state: str) -> None:
    """Put a card's journaled state back, as the journal stood before a write that the kill
    prevented (the SQLite file, through a connection of its own)."""
    db = sqlite3.connect(rig.journal.path)
    try:
        db.execute("UPDATE cards SET state = ? WHERE id = ?", (state, card_id))
        db.commit()
    finally:
        db.close()
