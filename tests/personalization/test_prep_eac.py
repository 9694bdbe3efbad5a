"""Preparation for EAC profiles: DG3 from the application's fingers, EF.SOD over it, the CAN
rules, and the profile's refusals (no HSM: a software signer)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from applets.emrtd.lds import files
from applets.emrtd.lds.com import decode_com
from applets.emrtd.lds.dg3 import Compression, decode_dg3
from applets.emrtd.lds.sod import parse_sod
from personalization.applications.fingerprint import Fingerprints, MissingFinger
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.errors import ConfigError
from personalization.prep import NoFingerprintsError, Preparer
from personalization.profile import DocumentProfile, load_profile
from tests.support.signers import SoftwareSigner

TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def profile() -> DocumentProfile:
    """The test profile of an EAC CCCD (PACE and BAC, DG3 listed)."""
    return load_profile("cccd")


@pytest.fixture(scope="module")
def applications(synth_dir: Path, profile: DocumentProfile) -> list[Application]:
    """Synthetic applicants with both index fingers."""
    valid = read_applications(synth_dir / "apps.jsonl", profile.intake_rules(), TODAY).valid
    return [a for _, a in valid][:3]


@pytest.fixture(scope="module")
def preparer(profile: DocumentProfile) -> Preparer:
    """A preparer for the EAC profile with a software DS."""
    return Preparer(profile, SoftwareSigner.create())


def _profile_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_dg3_holds_one_wsq_record_per_finger(preparer: Preparer,
                                             applications: list[Application]) -> None:
    """DG3 has two 19794-4 records, right index (2) then left index (7), WSQ at 500 ppi,
    each image byte for byte the application's."""
    application = applications[0]
    assert application.fingerprints is not None
    dg3 = decode_dg3(preparer.card_data(application).data_groups[3])
    fingers = [application.fingerprints.right_index, application.fingerprints.left_index]
    assert len(dg3.records) == 2
    for record, finger in zip(dg3.records, fingers, strict=True):
        assert record.compression is Compression.WSQ
        assert record.scan_resolution == record.image_resolution == (500, 500)
        (image,) = record.fingers
        assert not isinstance(finger, MissingFinger)
        assert (image.position, image.image) == (finger.position, finger.wsq)
        assert (image.width, image.height) == (finger.width, finger.height)
    assert [r.fingers[0].position for r in dg3.records] == [2, 7]


def test_a_finger_missing_with_a_reason_is_absent(preparer: Preparer,
                                                  applications: list[Application]) -> None:
    """A right index missing as bandaged leaves one record: the left index."""
    application = applications[1]
    assert application.fingerprints is not None
    fingers = Fingerprints(MissingFinger(2, "bandaged"), application.fingerprints.left_index)
    dg3 = decode_dg3(preparer.card_data(replace(application, fingerprints=fingers))
                     .data_groups[3])
    assert [r.fingers[0].position for r in dg3.records] == [7]


def test_no_finger_at_all_is_refused(preparer: Preparer,
                                     applications: list[Application]) -> None:
    """An application without fingers cannot get a DG3: a typed error naming it."""
    with pytest.raises(NoFingerprintsError, match=applications[0].application_id):
        preparer.card_data(replace(applications[0], fingerprints=None))


def test_sod_hashes_every_group_dg3_included(preparer: Preparer,
                                             applications: list[Application]) -> None:
    """EF.SOD covers DG1, DG2, DG3, DG13 and the chip's DG14 and DG15; EF.COM lists them."""
    data = preparer.card_data(applications[0])
    chip = {14: b"\x6e\x02\x31\x00", 15: b"\x6f\x00"}
    sod = parse_sod(preparer.sign(data, chip))
    groups = {**data.data_groups, **chip}
    assert sorted(sod.dg_hashes) == [1, 2, 3, 13, 14, 15]
    for number, body in groups.items():
        assert sod.dg_hashes[number] == hashlib.sha256(body).digest()
    tags = decode_com(preparer.com(data, with_chip_groups=True)).tags
    assert files.DATA_GROUPS[3].tag in tags


def test_can_is_the_last_six_digits_of_the_personal_id(
        preparer: Preparer, applications: list[Application]) -> None:
    """CCCD: the CAN is the personal ID's last 6 digits, kept in CardData."""
    application = applications[0]
    assert preparer.card_data(application).can == application.personal_id[-6:]


def test_printed_random_can_comes_from_the_rng(tmp_path: Path,
                                               applications: list[Application]) -> None:
    """printed-random: six digits drawn from the rng passed in (zero-padded), not the ID."""
    path = _profile_file(tmp_path, "extends: cccd\nname: random-can\ndata_groups: [1, 2, 3, 13]\n"
                                   "chip: {access: pace, can: printed-random}\n")
    drawn: list[int] = []

    def rng(bound: int) -> int:
        drawn.append(bound)
        return 4271

    data = Preparer(load_profile(str(path)), SoftwareSigner.create(), rng=rng).card_data(
        applications[0])
    assert (data.can, drawn) == ("004271", [1_000_000])
    assert "004271" not in repr(data)


def test_bac_profile_has_no_can_and_its_old_com(applications: list[Application]) -> None:
    """The CCCD on a BAC-only chip (``cccd-bac``) prepares as the BAC profile always did: no
    CAN, no DG3, EF.COM of DG1, DG2, DG13, DG14, DG15."""
    bac = load_profile("cccd-bac")
    assert (bac.chip.access, bac.data_groups) == ("bac", (1, 2, 13))
    preparer = Preparer(bac, SoftwareSigner.create())
    data = preparer.card_data(applications[0])
    assert data.can is None and sorted(data.data_groups) == [1, 2, 13]
    assert data.com_tags == (0x61, 0x75, 0x6D, 0x6E, 0x6F)


@pytest.mark.parametrize(("text", "named"), [
    ("chip: {access: bac}\n", "chip.access is 'bac'"),
    ("data_groups: [1, 2, 3, 13]\nchip: {access: bac}\n", "chip.access is 'bac'"),
    ("data_groups: [1, 2, 3, 13]\nchip: {access: pace}\ndg3: null\n", "no dg3 section"),
    ("chip: {access: pace, pace_parameters: [secp192r1]}\n", "chip.pace_parameters"),
    ("chip: {access: pace, pace_parameters: []}\n", "chip.pace_parameters"),
    ("chip: {access: pace, can: printed}\n", "chip.can"),
    ("chip: {access: pace, ca_curve: P-192}\n", "chip.ca_curve"),
    ("chip: {access: eac}\n", "chip.access"),
])
def test_profile_refusals_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    """A profile putting fingerprints behind BAC, or naming an unknown curve, CAN rule or
    access, is refused at load with the key in the message."""
    path = _profile_file(tmp_path, "extends: cccd\nname: broken\n" + text)
    with pytest.raises(ConfigError) as refused:
        load_profile(str(path))
    assert named in str(refused.value)


def test_extends_names_a_bundled_profile(tmp_path: Path) -> None:
    """``extends`` must name a bundled profile that extends nothing itself."""
    for base in ("nowhere", "cccd-bac"):
        with pytest.raises(ConfigError, match="extends"):
            load_profile(str(_profile_file(tmp_path, f"extends: {base}\nname: x\n")))
