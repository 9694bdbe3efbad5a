"""Data preparation: CCCD MRZ numbering, DG13 mapping, and chip files that decode back."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from applets.emrtd.lds.com import decode_com
from applets.emrtd.lds.dg1 import decode_dg1
from applets.emrtd.lds.dg2 import decode_dg2
from applets.emrtd.lds.dg3 import decode_dg3
from applets.emrtd.lds.dg13 import decode_dg13
from applets.emrtd.lds.mrz import parse_td1
from applets.emrtd.lds.sod import parse_sod
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.prep import Preparer, build_mrz
from personalization.profile import DocumentProfile, load_profile
from tests.support.signers import SoftwareSigner

TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def profile() -> DocumentProfile:
    """The bundled CCCD profile."""
    return load_profile("cccd")


@pytest.fixture(scope="module")
def applications(synth_dir: Path) -> list[Application]:
    """The synthesized applications, validated."""
    policy = load_profile("cccd").intake_rules()
    return [a for _, a in read_applications(synth_dir / "apps.jsonl", policy, TODAY).valid]


def test_cccd_mrz_matches_the_published_sample(profile: DocumentProfile,
                                               applications: list[Application]) -> None:
    """An applicant like the fact sheet's sample gets exactly the sample's three MRZ lines."""
    from dataclasses import replace

    sample = replace(applications[0], personal_id="001093047064", full_name="Ưng Hoàng Hiệp",
                     date_of_birth=date(1993, 1, 5), expiry_date=date(2033, 1, 5), sex="M")
    assert build_mrz(sample, profile).lines() == (
        "IDVNM0930470641001093047064<<2",
        "9301054M3301052VNM<<<<<<<<<<<8",
        "UNG<<HOANG<HIEP<<<<<<<<<<<<<<<",
    )


def test_no_expiry_is_fillers_with_check_digit_zero(profile: DocumentProfile,
                                                    applications: list[Application]) -> None:
    """A card without expiry carries '<<<<<<' and check digit 0, and still parses."""
    from dataclasses import replace

    old = replace(applications[0], expiry_date=None)
    line2 = build_mrz(old, profile).lines()[1]
    assert line2[8:15] == "<<<<<<0"
    assert parse_td1(build_mrz(old, profile).text).date_of_expiry == "<<<<<<"


def test_prepared_files_decode_to_the_application(profile: DocumentProfile,
                                                  applications: list[Application]) -> None:
    """Every prepared file decodes back to the application's data (the two index fingers in
    DG3 on the shipped profile); SOD hashes match the DGs."""
    signer = SoftwareSigner.create()
    preparer = Preparer(profile, signer)
    for app in applications:
        card = preparer.prepare(app)
        files = card.files
        assert set(files) == {"EF.COM", "EF.DG1", "EF.DG2", "EF.DG3", "EF.DG13", "EF.SOD"}
        assert decode_com(files["EF.COM"]).tags == (0x61, 0x75, 0x63, 0x6D)
        assert decode_dg1(files["EF.DG1"]) == card.data.mrz.text
        assert decode_dg2(files["EF.DG2"]).faces[0].image == app.portrait.jpeg
        assert app.fingerprints is not None
        assert [(f.position, f.image) for r in decode_dg3(files["EF.DG3"]).records
                for f in r.fingers] == [(f.position, f.wsq) for f in app.fingerprints.images()]
        dg13 = decode_dg13(files["EF.DG13"])
        assert (dg13.personal_id, dg13.full_name) == (app.personal_id, app.full_name)
        assert dg13.place_of_residence == app.place_of_residence
        sod = parse_sod(files["EF.SOD"])
        for number, name in ((1, "EF.DG1"), (2, "EF.DG2"), (3, "EF.DG3"), (13, "EF.DG13")):
            assert sod.dg_hashes[number] == hashlib.sha256(files[name]).digest()
        signer.verify(sod.signed_attrs_der, sod.signature)


def test_chip_groups_join_the_sod(profile: DocumentProfile,
                                  applications: list[Application]) -> None:
    """DG14 and DG15 supplied at encoding are hashed into the SOD, and EF.COM lists them."""
    preparer = Preparer(profile, SoftwareSigner.create())
    data = preparer.card_data(applications[0])
    sod = parse_sod(preparer.sign(data, {14: b"\x6e\x00", 15: b"\x6f\x00"}))
    assert set(sod.dg_hashes) == {1, 2, 3, 13, 14, 15}
    assert decode_com(preparer.com(data, with_chip_groups=True)).tags == (
        0x61, 0x75, 0x63, 0x6D, 0x6E, 0x6F)
