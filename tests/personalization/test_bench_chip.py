"""The encode and QA figures of ``cardline bench``, on the real pcscd (ratios, never speeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from applets.emrtd.lds import files
from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from applets.virtual.card import Lifecycle
from applets.virtual.store import ChipStore
from personalization import bench
from personalization.benchkit import bench_applications, bench_hsm
from personalization.profile import load_profile
from personalization.service.eacline import bench_pki

pytestmark = pytest.mark.pcscd


@pytest.mark.parametrize("profile_name", ["cccd", "cccd-bac"])
def test_encode_and_qa_figures_hold_together(encoder_bank: EncoderBank, tmp_path: Path,
                                             profile_name: str) -> None:
    """The floors come from real work: the replay personalizes its blanks to the lock, the
    card host counts every APDU it answers, and each figure is the median of its repetitions
    with their min–max beside it. On the shipped profile QA runs the full EAC check."""
    assert encoder_bank.client().status()[0] is None, "the bench uses encoder 0"
    profile = load_profile(profile_name)
    before = encoder_bank.client().work()[0]
    with bench_hsm(tmp_path, eac=bench_pki if profile.chip.eac else None) as hsm:
        ctx = bench.BenchContext(tmp_path, profile, bench_applications(tmp_path, profile, 4),
                                 hsm, seconds=0.2, cards=3, bank=encoder_bank)
        encode = bench.encode_section(ctx)
        qa = bench.qa_section(ctx)
    after = encoder_bank.client().work()[0]

    for figures in (encode, qa):
        for name, value in figures.items():
            if f"{name}_range" in figures:
                low, high = figures[f"{name}_range"]
                assert low <= value <= high, name
    assert encode["encode_apdus_vs_min"] == 1.0
    # The floor is what the chip and the wire cost: never far below the bare round trips.
    # The wire is timed in a short burst after each card, which a scheduling hiccup on a
    # 2-core machine can inflate, so the bound leaves room for that noise and still catches a
    # floor that skipped the chip's work.
    assert encode["encode_floor_vs_wire"] > 0.4
    assert encode["encode_ms_vs_floor"] > 0.2

    store = ChipStore(encoder_bank.chips_dir)
    replayed = [s for s in store.serials() if s.startswith("REPLAY")]
    assert len(replayed) >= 4, "each card's traffic was replayed on a blank of its own"
    for serial in replayed[-4:]:
        memory = store.open(serial).memory
        assert memory.lifecycle is Lifecycle.LOCKED and files.EF_SOD.fid in memory.files
        assert memory.aa_scalar is not None  # each blank generated its own key again

    assert qa["qa_protocols"] == ("PACE+CA+TA" if profile.chip.eac else "BAC")
    assert qa["qa_card_ms_per_card"] > 0
    assert qa["qa_floor_vs_wire"] > 1.0  # the chip's own work is on top of the wire
    assert qa["qa_ms_vs_floor"] > 0.5

    # The card host saw at least every APDU the figures account for (warm-ups come on top).
    counted = 3 * encode["encode_apdus_per_card"] + 6 * qa["qa_apdus_per_card"]
    assert after.apdus - before.apdus >= counted
    assert after.busy_s > before.busy_s
    assert encoder_bank.client().status()[0] is None, "the bench leaves encoder 0 empty"
    with PCSCTransport(encoder_bank.reader_name(0)) as transport:
        transport.wait_for_removal(0.05)  # and pcscd has seen it so: the next user is safe
