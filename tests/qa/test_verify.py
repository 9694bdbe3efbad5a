"""verify_card on in-process virtual chips: a good card passes, each bad card fails with its own
reason."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from applets.emrtd.lds.dg15 import encode_dg15_ec_point
from applets.emrtd.lds.files import DATA_GROUPS, EF_COM, EF_SOD
from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from qa.checks import Expected
from qa.passive_auth import TrustStore
from qa.readback import keys_from_fields
from qa.verify import Policy, Verdict, verify_card
from tests.qa.cards import AT, DAY, PKI, Prepared, make_ds, new_key, without_document_type

MakeCard = Callable[..., VirtualEMRTD]


def run(card: VirtualEMRTD, prepared: Prepared, trust: TrustStore, **options) -> Verdict:
    options.setdefault("expected", prepared.expected)
    max_data = options.pop("max_command_data", 65535)
    return verify_card(DirectTransport(card, max_data), options.pop("keys", prepared.keys), trust,
                       at=options.pop("at", AT), rng=os.urandom, **options)


def test_good_card_passes(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """A correctly personalized, locked card passes every check with no skipped data check."""
    verdict = run(make_card(), prepared, trust)
    assert verdict.passed, verdict.reasons
    assert set(verdict.files) == {"EF.COM", "EF.SOD", "EF.DG1", "EF.DG2", "EF.DG13", "EF.DG14",
                                  "EF.DG15"}
    assert verdict.skipped == ()
    assert verdict.apdus > 0



def codes(verdict: Verdict) -> set[str]:
    return set(verdict.codes)


def _flip_last_image_byte(files: dict[int, bytes]) -> None:
    dg2 = bytearray(files[DATA_GROUPS[2].fid])
    dg2[-3] ^= 0x01  # inside the JPEG, after signing
    files[DATA_GROUPS[2].fid] = bytes(dg2)


def test_dg_changed_after_signing(make_card: MakeCard, prepared: Prepared,
                                  trust: TrustStore) -> None:
    """One byte of DG2 changed after signing fails dg_hash_mismatch for DG2 (and dg2_mismatch)."""
    card = make_card(after_sign=_flip_last_image_byte)
    assert codes(run(card, prepared, trust, expected=None)) == {"dg_hash_mismatch"}
    verdict = run(card, prepared, trust)
    assert codes(verdict) == {"dg_hash_mismatch", "dg2_mismatch"}
    hash_finding = next(f for f in verdict.reasons if f.code == "dg_hash_mismatch")
    assert hash_finding.message.endswith("(DG2)")


def test_ds_not_certified_by_trusted_csca(make_card: MakeCard, prepared: Prepared,
                                          trust: TrustStore) -> None:
    """A SOD whose DS was issued by another CSCA fails ds_not_trusted only."""
    rogue = PKI()
    card = make_card(signer=rogue.signer())
    assert codes(run(card, prepared, trust)) == {"ds_not_trusted"}
    assert run(card, prepared, TrustStore((rogue.csca_der,))).passed


def _ds_card(make_card: MakeCard, pki: PKI, **ds_options) -> VirtualEMRTD:
    ds = make_ds(pki.csca_der, pki.csca_key, pki.ds_key, **ds_options)
    return make_card(signer=pki.signer(ds))


def test_expired_ds(make_card: MakeCard, prepared: Prepared, pki: PKI, trust: TrustStore) -> None:
    """A DS certificate that expired before the check fails ds_expired."""
    card = _ds_card(make_card, pki, validity=(AT - 400 * DAY, AT - DAY),
                    usage=(AT - 400 * DAY, AT + DAY))
    assert codes(run(card, prepared, trust)) == {"ds_expired"}


def test_not_yet_valid_ds(make_card: MakeCard, prepared: Prepared, pki: PKI,
                          trust: TrustStore) -> None:
    """A DS certificate valid only from tomorrow fails ds_not_yet_valid."""
    card = _ds_card(make_card, pki, validity=(AT + DAY, AT + 400 * DAY),
                    usage=(AT - DAY, AT + 90 * DAY))
    assert codes(run(card, prepared, trust)) == {"ds_not_yet_valid"}


def test_ds_outside_usage_period(make_card: MakeCard, prepared: Prepared, pki: PKI,
                                 trust: TrustStore) -> None:
    """Signing after the DS key's usage period fails in line and is only a warning at a desk."""
    card = _ds_card(make_card, pki, usage=(AT - 100 * DAY, AT - 10 * DAY),
                    validity=(AT - 100 * DAY, AT + 3000 * DAY))
    assert codes(run(card, prepared, trust)) == {"ds_outside_usage_period"}
    desk = run(card, prepared, trust, policy=Policy(usage_period_is_failure=False))
    assert desk.passed and [w.code for w in desk.warnings] == ["ds_outside_usage_period"]


def test_ds_without_document_type(make_card: MakeCard, prepared: Prepared, pki: PKI,
                                  trust: TrustStore) -> None:
    """A DS certificate without the DocumentType extension fails ds_document_type_missing."""
    ds = without_document_type(pki.ds_der, pki.csca_der, pki.csca_key)
    card = make_card(signer=pki.signer(ds))
    assert codes(run(card, prepared, trust)) == {"ds_document_type_missing"}


def test_ds_for_another_document_type(make_card: MakeCard, prepared: Prepared, pki: PKI,
                                      trust: TrustStore) -> None:
    """A DS allowed to sign passports only ('P') fails ds_document_type_mismatch on an ID card."""
    card = _ds_card(make_card, pki, doc_types=("P",))
    assert codes(run(card, prepared, trust)) == {"ds_document_type_mismatch"}


def test_one_letter_document_type_covers_the_code(make_card: MakeCard, prepared: Prepared,
                                                  pki: PKI, trust: TrustStore) -> None:
    """A DS listing 'I' may sign a card whose MRZ document code is 'ID'."""
    assert run(_ds_card(make_card, pki, doc_types=("I",)), prepared, trust).passed


def _wrong_aa_key(groups: dict[int, bytes]) -> None:
    other = new_key().public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    groups[15] = encode_dg15_ec_point(other)


def test_wrong_aa_key_in_dg15(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """A signed DG15 that is not the chip's key fails aa_failed (passive authentication passes)."""
    card = make_card(before_sign=_wrong_aa_key)
    assert codes(run(card, prepared, trust)) == {"aa_failed"}


def test_unlocked_chip(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """A chip never locked fails not_locked and plain_read_allowed (and cannot do BAC)."""
    card = make_card(lock=False)
    assert codes(run(card, prepared, trust)) >= {"not_locked", "plain_read_allowed"}


def test_lock_probes_leave_a_good_card_unchanged(make_card: MakeCard, prepared: Prepared,
                                                 trust: TrustStore) -> None:
    """QA writes nothing to a locked card: its memory is identical before and after."""
    card = make_card()
    before = {fid: bytes(body) for fid, body in card.memory.files.items()}
    assert run(card, prepared, trust).passed
    assert {fid: bytes(body) for fid, body in card.memory.files.items()} == before


def test_wrong_access_keys(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """Keys that do not match the chip fail bac_failed and nothing is read."""
    keys = keys_from_fields("000000000", "900101", "300101")
    verdict = run(make_card(), prepared, trust, keys=keys)
    assert verdict.codes == ["bac_failed"] and verdict.files == {}


def test_data_group_missing(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """A DG listed in the SOD but absent from the chip fails dg_missing (and COM inconsistency)."""
    def drop_dg13(files: dict[int, bytes]) -> None:
        del files[DATA_GROUPS[13].fid]

    verdict = run(make_card(after_sign=drop_dg13), prepared, trust, expected=None)
    assert codes(verdict) == {"dg_missing"}
    assert verdict.reasons[0].message.endswith("(DG13)")


def test_com_inconsistent(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """EF.COM that omits a signed DG fails com_inconsistent."""
    from applets.emrtd.lds.com import encode_com

    def short_com(files: dict[int, bytes]) -> None:
        files[EF_COM.fid] = encode_com([0x61, 0x75, 0x6D])

    assert codes(run(make_card(after_sign=short_com), prepared, trust)) == {"com_inconsistent"}


def test_sod_signature_invalid(make_card: MakeCard, prepared: Prepared, pki: PKI,
                               trust: TrustStore) -> None:
    """A SOD signature made by another key than the DS certificate's fails sod_signature_invalid."""
    forged = replace(pki.signer(), key=new_key())
    assert codes(run(make_card(signer=forged), prepared, trust)) == {"sod_signature_invalid"}


def test_sod_malformed(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """An EF.SOD that is not CMS fails sod_malformed."""
    def garbage(files: dict[int, bytes]) -> None:
        files[EF_SOD.fid] = bytes.fromhex("7703020100")

    verdict = run(make_card(after_sign=garbage), prepared, trust)
    assert "sod_malformed" in codes(verdict)


def test_aa_key_missing(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """A chip without DG15 fails aa_key_missing in line; a desk may waive Active Authentication."""
    def no_dg15(groups: dict[int, bytes]) -> None:
        del groups[15]

    card = make_card(before_sign=no_dg15)
    assert codes(run(card, prepared, trust)) == {"aa_key_missing"}
    waived = run(card, prepared, trust, policy=Policy(require_active_authentication=False))
    assert waived.passed and any("Active Authentication" in s for s in waived.skipped)


def test_data_mismatches(make_card: MakeCard, prepared: Prepared, trust: TrustStore) -> None:
    """Prepared MRZ, DG13 and image that differ from the chip give dg1/dg13/dg2_mismatch."""
    assert prepared.expected.mrz is not None and prepared.expected.dg13 is not None
    other_mrz = prepared.expected.mrz.replace("<<<<<<<<<<<<", "X<<<<<<<<<<<", 1)
    expected = Expected(mrz=other_mrz, dg13=replace(prepared.expected.dg13, full_name="Nguyễn A"),
                        dg2_image=b"\xff\xd8other")
    verdict = run(make_card(), prepared, trust, expected=expected)
    assert codes(verdict) == {"dg1_mismatch", "dg13_mismatch", "dg2_mismatch"}
    assert "full_name" in " ".join(f.message for f in verdict.reasons)


def test_desk_check_skips_data_checks_and_says_so(make_card: MakeCard, prepared: Prepared,
                                                  trust: TrustStore) -> None:
    """Without an application the data checks are skipped, listed in the verdict, and it passes."""
    verdict = run(make_card(), prepared, trust, expected=None)
    assert verdict.passed and len(verdict.skipped) == 3


def test_short_apdu_reader_path(make_card: MakeCard, prepared: Prepared,
                                trust: TrustStore) -> None:
    """A chip and reader limited to short APDUs are read in 223-byte blocks and pass."""
    short = run(make_card(max_command_data=255), prepared, trust, max_command_data=255)
    extended = run(make_card(), prepared, trust)
    assert short.passed and short.files.keys() == extended.files.keys()
    assert short.files["EF.DG2"] == extended.files["EF.DG2"]  # chips differ only in AA keys
    assert short.apdus > extended.apdus + 50  # DG2 alone takes ~68 short reads


def test_file_beyond_32767_bytes_is_read_with_odd_ins(make_card: MakeCard, prepared: Prepared,
                                                      trust: TrustStore) -> None:
    """A 40 kB DG2 read in short blocks crosses offset 32767 with READ BINARY B1 and verifies."""
    from applets.emrtd.lds.dg2 import encode_dg2

    image = b"\xff\xd8" + bytes(i % 251 for i in range(40_000))

    def big_dg2(groups: dict[int, bytes]) -> None:
        groups[2] = encode_dg2(image, 360, 480)

    card = make_card(before_sign=big_dg2)
    expected = replace(prepared.expected, dg2_image=image)
    verdict = run(card, prepared, trust, expected=expected, max_command_data=255)
    assert verdict.passed, verdict.reasons
    assert len(verdict.files["EF.DG2"]) > 32767


def test_card_left_in_a_session_is_checked_again(make_card: MakeCard, prepared: Prepared,
                                                 trust: TrustStore) -> None:
    """A second check right after the first (old SM session still open) passes too."""
    card = make_card()
    assert run(card, prepared, trust).passed
    assert run(card, prepared, trust).passed


def test_naive_check_time_is_refused(make_card: MakeCard, prepared: Prepared,
                                     trust: TrustStore) -> None:
    """A check time without a time zone is an operational error, not a verdict."""
    from qa.errors import QAError

    with pytest.raises(QAError, match="timezone"):
        run(make_card(), prepared, trust, at=AT.replace(tzinfo=None))
