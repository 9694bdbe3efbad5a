"""The shipped line (``profile: cccd``, an EAC chip): `cardline demo` writes EAC chips with
both fingers in DG3 and its inline QA opens each by PACE with the CAN, trusts DG14's key only
after passive authentication, runs Chip and Terminal Authentication (the QA desk's key in
the HSM) and reads DG3 back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from applets.emrtd.lds.dg3 import decode_dg3
from applets.emrtd.lds.securityinfos import decode_card_access
from applets.virtual.bank import EncoderBank

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


def _cardline(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDLINE_CONFIG")}
    return subprocess.run([sys.executable, "-m", "personalization", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_shipped_demo_hands_out_eac_chips(encoder_bank: EncoderBank,
                                              tmp_path: Path) -> None:
    """Every card handed out passed QA by PACE, PA, CA, TA and AA; the files QA read include
    EF.CardAccess offering PACE and a DG3 with the right and left index fingers."""
    shipped = (ROOT / "line.yaml").read_text(encoding="utf-8")
    assert "\nprofile: cccd " in shipped
    (tmp_path / "line.yaml").write_text(shipped, "utf-8")
    encoder_bank.down()  # the demo runs its own pcscd: one per machine
    try:
        assert _cardline(tmp_path, "keys", "setup-embedded").returncode == 0
        demo = _cardline(tmp_path, "demo", "--cards", "3", "--dump-chips")
        assert demo.returncode == 0, demo.stdout + demo.stderr
    finally:
        encoder_bank.up()
    report = json.loads((tmp_path / "demo-out" / "report.json").read_text("utf-8"))
    assert report["applications"]["handed_out"] == 3
    handed = [c for c in report["cards"] if c["state"] == "handed_out"]
    assert len(handed) == 3
    for card in handed:
        assert card["qa"]["protocols"] == ["PACE", "PA", "CA", "TA", "AA"], card["qa"]
        folder = tmp_path / "demo-out" / "cards" / card["application_id"]
        fingers = [f.position for r in decode_dg3((folder / "EF.DG3.bin").read_bytes()).records
                   for f in r.fingers]
        assert sorted(fingers) == [2, 7]
        access = decode_card_access((folder / "EF.CardAccess.bin").read_bytes())
        assert {info.parameter_id for info in access.pace_infos} == {12, 13}
