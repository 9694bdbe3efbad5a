"""The tuned preparation path gives, card for card, the bytes of the general reference path."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd.lds.com import encode_com
from applets.emrtd.lds.dg3 import FingerImage, FingerRecord, encode_dg3
from applets.emrtd.lds.dg13 import DG13
from applets.emrtd.lds.mrz import name_field
from applets.emrtd.lds.sod import SODBuilder, parse_sod
from personalization.applications.fingerprint import FingerImage as AppFinger
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.prep import (
    FINGER_QUALITY,
    PPI,
    PreparedCard,
    Preparer,
    build_dg13,
    ddmmyyyy,
    prepare_all,
    split_name,
    yymmdd,
)
from personalization.profile import DocumentProfile, load_profile
from personalization.synth import synthesize
from tests.applets.lds import reference
from tests.support.signers import SoftwareSigner

TODAY = date(2026, 11, 24)
LONG_PLACE = "Số 12 ngõ 34 đường Trần Hưng Đạo, Phường Bến Nghé, Quận 1, " * 5


class FixedSigner:
    """A deterministic stand-in for the DS: same input, same signature, so files compare."""

    signature_algorithm = "ecdsa-with-SHA256"

    def __init__(self, certificate_der: bytes) -> None:
        self.certificate_der = certificate_der

    def sign(self, data: bytes) -> bytes:
        """A DER-shaped value derived from ``data`` (never verified here)."""
        digest = hashlib.sha256(data).digest()
        return b"\x30\x44\x02\x20" + digest + b"\x02\x20" + digest[::-1]


@pytest.fixture(scope="module")
def signer() -> FixedSigner:
    """One deterministic signer around a real DS-shaped certificate."""
    return FixedSigner(SoftwareSigner.create().certificate_der)


def _variants(application: Application, index: int) -> list[Application]:
    """The application and edge cases of it: no expiry, spouse, former ID, long text, NFD."""
    out = [application]
    if index % 3 == 0:
        out.append(replace(application, expiry_date=None, spouse_name="Lê Thị Bích Ngọc",
                           former_id_number="012345678"))
    if index % 4 == 1:
        out.append(replace(application, spouse_name=None, former_id_number=None,
                           full_name="Tôn Nữ Thị Ngọc Bích Phượng Hoàng Yến Anh Thư",
                           place_of_residence=LONG_PLACE[: 40 + 7 * index],
                           identifying_marks="Sẹo " * (index % 90 + 1)))
    if index % 5 == 2:
        out.append(replace(application, full_name=unicodedata.normalize("NFD", "Đặng Ánh-Tuyết"),
                           place_of_origin=unicodedata.normalize("NFD", LONG_PLACE)))
    return out


@pytest.fixture(scope="module")
def applications(tmp_path_factory: pytest.TempPathFactory) -> list[Application]:
    """Sixty synthesized applications and ~50 edge-case variants of them."""
    path = tmp_path_factory.mktemp("fast-prep") / "apps.jsonl"
    synthesize(60, 2027, path)
    valid = [a for _, a in read_applications(path, load_profile("cccd").intake_rules(),
                                             TODAY).valid]
    return [variant for i, a in enumerate(valid) for variant in _variants(a, i)]


PROFILES = {
    "cccd": {},
    "sha384, no AA": {"hash_algorithm": "sha384", "active_authentication": False},
    "DG1 and DG13 only": {"data_groups": (1, 13)},
}


def _reference_mrz(application: Application, profile: DocumentProfile) -> str:
    """The CCCD TD1 written out field by field (ICAO 9303-5 §4.2.2, fact sheet §5.1)."""
    pid, cd = application.personal_id, reference.check_digit
    birth = application.date_of_birth.strftime("%y%m%d")
    expiry = application.expiry_date.strftime("%y%m%d") if application.expiry_date else "<" * 6
    line1 = (profile.document_code + profile.issuing_state + pid[-9:] + cd(pid[-9:])
             + pid + "<<" + cd(pid))
    upper = (birth + cd(birth) + application.sex + expiry + cd(expiry) + profile.nationality
             + "<" * 11)
    composite = cd(line1[5:] + upper[:7] + upper[8:15] + upper[18:29])
    return line1 + upper + composite + name_field(*split_name(application.full_name))


def _reference_dg13(application: Application, profile: DocumentProfile) -> DG13:
    """build_dg13 with its dates formatted by strftime, as before the tuning."""
    expiry = application.expiry_date
    return replace(build_dg13(application, profile),
                   date_of_birth=application.date_of_birth.strftime("%d/%m/%Y"),
                   issue_date=application.issue_date.strftime("%d/%m/%Y"),
                   expiry_date=expiry.strftime("%d/%m/%Y") if expiry else profile.expiry.none_text)


def _fingers(application: Application) -> tuple[AppFinger, ...]:
    assert application.fingerprints is not None  # the shipped profile requires them
    return application.fingerprints.images()


def _reference_files(application: Application, profile: DocumentProfile,
                     signer: FixedSigner) -> dict[str, bytes]:
    """Every file of the card from the reference encoders."""
    portrait = application.portrait
    makers = {
        1: lambda: reference.encode_dg1(_reference_mrz(application, profile)),
        2: lambda: reference.encode_dg2(portrait.jpeg, portrait.width, portrait.height,
                                        gender=application.sex),
        13: lambda: reference.encode_dg13(_reference_dg13(application, profile)),
        # the DG3 encoder has no slower twin: test_dg3.py holds it to the BSI 2008 sample
        3: lambda: encode_dg3([FingerRecord((FingerImage(f.position, f.wsq, f.width, f.height,
                                                         FINGER_QUALITY),),
                                            scan_resolution=(PPI, PPI),
                                            image_resolution=(PPI, PPI))
                               for f in _fingers(application)]),
    }
    groups = {n: makers[n]() for n in profile.data_groups}
    tags = [{1: 0x61, 2: 0x75, 3: 0x63, 13: 0x6D}[n] for n in sorted(groups)]
    files = {"EF.COM": encode_com(tags, profile.lds_version, profile.unicode_version)}
    files.update({f"EF.DG{n}": body for n, body in groups.items()})
    files["EF.SOD"] = SODBuilder(signer, profile.hash_algorithm).build(groups)
    return files


@pytest.mark.parametrize("changes", PROFILES.values(), ids=list(PROFILES))
def test_prepared_files_equal_the_reference(changes: dict[str, object],
                                            applications: list[Application],
                                            signer: FixedSigner) -> None:
    """For every application and variant, each file equals the reference encoders' bytes."""
    profile = load_profile("cccd").model_copy(update=changes)
    preparer = Preparer(profile, signer)
    for application in applications:
        card = preparer.prepare(application)
        assert card.files == _reference_files(application, profile, signer)
        assert card.data.mrz.text == _reference_mrz(application, profile)


def test_sod_hashes_the_reference_files(applications: list[Application],
                                        signer: FixedSigner) -> None:
    """EF.SOD of the tuned path hashes exactly the reference DG bytes."""
    profile = load_profile("cccd")
    card = Preparer(profile, signer).prepare(applications[0])
    expected = _reference_files(applications[0], profile, signer)
    sod = parse_sod(card.files["EF.SOD"])
    assert sod.dg_hashes == {n: hashlib.sha256(expected[f"EF.DG{n}"]).digest()
                             for n in (1, 2, 3, 13)}


@pytest.mark.parametrize("batch", [1, 5, 32, 64, 500])
def test_prepare_all_equals_prepare(batch: int, applications: list[Application],
                                    signer: FixedSigner) -> None:
    """Batching (card data and hashes first, then signatures) changes no byte and no order."""
    preparer = Preparer(load_profile("cccd"), signer)
    cards: list[PreparedCard] = list(prepare_all(preparer, applications, batch=batch))
    assert [c.data.application_id for c in cards] == [a.application_id for a in applications]
    assert [c.files for c in cards] == [preparer.prepare(a).files for a in applications]


def test_prepare_all_of_nothing_is_nothing(signer: FixedSigner) -> None:
    """No applications, no cards (and no signature taken)."""
    assert list(prepare_all(Preparer(load_profile("cccd"), signer), [])) == []


@given(st.dates(date(1000, 1, 1)))
def test_dates_equal_strftime(day: date) -> None:
    """The formatted dates are strftime's %y%m%d and %d/%m/%Y, for any four-digit year."""
    assert yymmdd(day) == day.strftime("%y%m%d")
    assert ddmmyyyy(day) == day.strftime("%d/%m/%Y")


def test_reference_path_is_exercised(applications: list[Application]) -> None:
    """The variants reach the long-form DER lengths and the MRZ truncation they are for."""
    assert len(applications) > 90
    assert any(len(a.place_of_residence.encode()) > 255 for a in applications)
    assert any(a.expiry_date is None for a in applications)
    assert any(len(name_field(*split_name(a.full_name)).rstrip("<")) == 30 for a in applications)

