"""A DS key rotated by a ceremony while cards are being prepared (real SoftHSM)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from applets.emrtd.lds.sod import parse_sod
from hsm.ceremony import new_ds
from hsm.errors import KeyRetired
from hsm.inventory import KeyInventory
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner
from personalization.applications.intake import read_applications
from personalization.benchkit import BENCH_OFFICERS, bench_hsm
from personalization.prep import Preparer
from personalization.profile import load_profile
from qa.passive_auth import check_signature, signer_certificate

pytestmark = pytest.mark.softhsm


def _signed_by(sod_bytes: bytes) -> bytes:
    """The DS certificate a SOD carries, after checking its signature verifies under it."""
    sod = parse_sod(sod_bytes)
    certificate = signer_certificate(sod)
    assert certificate is not None and check_signature(sod, certificate) == []
    return certificate


def test_preparation_follows_a_rotation_and_stops_without_a_successor(
        tmp_path: Path, synth_dir: Path) -> None:
    """Cards before the ceremony carry the old DS, cards after it the new one, each SOD
    verifying under the certificate it carries, also for a second preparer sharing the signer
    (it finds the signer moved already); a key retired with no successor stops preparation
    with KeyRetired instead of signing on."""
    profile = load_profile("cccd")
    apps = [a for _, a in read_applications(synth_dir / "apps.jsonl", profile.intake_rules(),
                                            date(2026, 11, 24)).valid]
    with bench_hsm(tmp_path) as kit, \
            KeyInventory(kit.data_dir / "hsm" / "inventory.db") as inventory, \
            DSSigner(kit.module, kit.token, kit.pin, inventory, status_every_s=0.0) as signer:
        old_certificate = signer.certificate_der
        preparer, sharing = Preparer(profile, signer), Preparer(profile, signer)
        before = preparer.prepare(apps[0]).files["EF.SOD"]
        with HSM(kit.module, kit.token, kit.pin) as hsm, \
                KeyInventory(inventory.path) as officers:
            new = new_ds(hsm, officers, officers=BENCH_OFFICERS, at=datetime.now(UTC),
                         usage_days=30, max_documents=100, label_prefix="DS-BENCH")
        after = [preparer.prepare(a).files["EF.SOD"] for a in apps[1:4]]
        after.append(sharing.prepare(apps[4]).files["EF.SOD"])
        assert _signed_by(before) == old_certificate
        assert all(_signed_by(sod) == new.certificate for sod in after)

        inventory.retire(new.label, "suspected compromise", datetime.now(UTC))
        for each in (preparer, sharing):
            with pytest.raises(KeyRetired):
                each.prepare(apps[5])
