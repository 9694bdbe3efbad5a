"""The demo line on real parts: emulated printers, virtual encoders, SoftHSM and QA."""

from __future__ import annotations

import queue
from datetime import date
from pathlib import Path

import pytest

from applets.virtual.bank import EncoderBank
from applets.virtual.card import Lifecycle
from applets.virtual.store import ChipStore
from personalization import demo
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.benchkit import bench_hsm
from personalization.prep import Preparer
from personalization.profile import load_profile
from qa.passive_auth import TrustStore

pytestmark = pytest.mark.pcscd


def test_demo_line_hands_out_every_card_with_a_balanced_stock(
        encoder_bank: EncoderBank, synth_dir: Path, tmp_path: Path) -> None:
    """Four applications over two stations: all handed out, each printed, chips locked, the
    stock balances and every card appears in the report with its QA verdict."""
    profile = load_profile("cccd")
    apps = [a for _, a in read_applications(synth_dir / "apps.jsonl", profile.intake_rules(),
                                            date(2026, 11, 24)).valid][:4]
    work: queue.Queue[tuple[Application, int]] = queue.Queue()
    for application in apps:
        work.put((application, 0))
    with bench_hsm(tmp_path) as hsm:
        from hsm.certificates import certificate_to_pem

        trust = TrustStore.from_pem(certificate_to_pem(hsm.csca_der).encode("ascii"))
        line = demo.DemoLine(profile, Preparer(profile, hsm.signer), trust, tmp_path / "out",
                             True, work)
        demo.run_line(line, encoder_bank, 2, 4, realistic=False)
    result = demo.report(line, "t", apps)
    assert result["applications"] == {"handed_out": 4, "failed": 0, "pending": 0}
    assert result["stock"] == {"fed": 4, "handed_out": 4, "rejected": 0, "in_machine": 0}
    store = ChipStore(encoder_bank.chips_dir)
    for card in result["cards"]:
        assert card["qa"]["verdict"] == "pass"
        folder = tmp_path / "out" / "cards" / card["application_id"]
        assert {"front.png", "back.png", "EF.SOD.bin", "EF.DG15.bin"} <= {
            p.name for p in folder.iterdir()}
        assert store.open(card["chip_serial"]).memory.lifecycle is Lifecycle.LOCKED
    assert "<table>" in demo.render_html(result)
