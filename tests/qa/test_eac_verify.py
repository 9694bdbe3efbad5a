"""verify_card's EAC path on in-process chips: PACE (CAN or MRZ), passive authentication, CA, TA,
DG3 and AA; each failure with its own reason code and no pass."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date

import pytest

from applets.emrtd.cvc import ISRights, Role
from applets.emrtd.eac_reader import TerminalCredentials
from applets.emrtd.lds.dg3 import decode_dg3, encode_dg3
from applets.emrtd.perso import AccessProtocols
from applets.emrtd.sm import SM_CLA_BITS
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import DirectTransport, Transport
from applets.virtual.card import VirtualEMRTD
from qa.bench import measure
from qa.checks import Expected
from qa.eac import EACAccess, terminal_credentials
from qa.errors import AccessKeyError, QAError
from qa.passive_auth import TrustStore
from qa.readback import DocumentKeys, keys_from_fields
from qa.reasons import MESSAGES, MESSAGES_VI, Reason
from qa.report import build_report, render_html
from qa.verify import Verdict, verify_card
from tests.applets.eac_cards import CAN
from tests.applets.eac_cards import pki as cv_pki
from tests.qa.cards import AT, PKI, Prepared
from tests.qa.eac_chips import (
    FINGERPRINTS,
    EACOptions,
    Groups,
    expected_with_fingers,
    personalize_eac_chip,
)

FULL = ("PACE", "PA", "CA", "TA", "AA")
NEW_CODES = {"card_access_unreadable", "pace_refused", "bac_refused", "sm_failed", "ca_failed",
             "ta_refused", "dg3_unreadable", "dg3_hash_mismatch", "dg3_mismatch"}


@dataclass
class Spy:
    """A card that records, for every command, whether it was protected and the status word."""

    card: VirtualEMRTD
    seen: list[tuple[bool, int]] = field(default_factory=list)

    def atr(self) -> bytes:
        return self.card.atr()

    def power_on(self) -> None:
        self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def reset(self) -> None:
        self.card.reset()

    def execute(self, command: bytes) -> bytes:
        answer = self.card.execute(command)
        self.seen.append((command[0] & SM_CLA_BITS == SM_CLA_BITS,
                          int.from_bytes(answer[-2:], "big")))
        return answer


class FlipMAC:
    """A transport that flips the last byte (inside DO8E) of the first protected READ BINARY
    answer: a man in the middle the terminal must catch."""

    def __init__(self, inner: Transport) -> None:
        self.inner, self.flipped = inner, False

    @property
    def max_command_data(self) -> int:
        return self.inner.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        answer = self.inner.transmit(command)
        protected = command.cla & SM_CLA_BITS == SM_CLA_BITS
        if protected and command.ins == 0xB0 and not self.flipped and answer.data:
            self.flipped = True
            return ResponseAPDU(answer.data[:-1] + bytes([answer.data[-1] ^ 1]), answer.sw)
        return answer


@pytest.fixture(scope="module")
def chip_cache() -> dict[EACOptions, VirtualEMRTD]:
    return {}


@pytest.fixture()
def chip(prepared: Prepared, pki: PKI,
         chip_cache: dict[EACOptions, VirtualEMRTD]) -> Callable[..., VirtualEMRTD]:
    """An EAC chip personalized once per set of options, powered on afresh for each use."""

    def make(**options: object) -> VirtualEMRTD:
        key = EACOptions(**options)  # type: ignore[arg-type]
        if key not in chip_cache:
            chip_cache[key] = personalize_eac_chip(prepared, pki.signer(), key)
        card = chip_cache[key]
        card.power_on()
        return card

    return make


def by_can(can: str = CAN, terminal: TerminalCredentials | None = None) -> EACAccess:
    return EACAccess.by_can(can, terminal or cv_pki().terminal())


def by_mrz(terminal: TerminalCredentials | None = None, allow_bac: bool = False) -> EACAccess:
    return EACAccess.by_mrz(terminal or cv_pki().terminal(), allow_bac=allow_bac)


def run(card: VirtualEMRTD | Spy | Transport, prepared: Prepared, trust: TrustStore,
        access: EACAccess | None, *, keys: DocumentKeys | None = None, no_keys: bool = False,
        expected: Expected | None = None) -> Verdict:
    """verify_card with the prepared keys (unless ``keys`` or ``no_keys``) and the expected
    data with the sample's fingers (unless ``expected``)."""
    transport = card if isinstance(card, FlipMAC) else DirectTransport(card)  # type: ignore[arg-type]
    given = None if no_keys else keys or prepared.keys
    return verify_card(transport, given, trust, at=AT, rng=os.urandom, access=access,
                       expected=expected or expected_with_fingers(prepared))


def personal_values(prepared: Prepared) -> list[str]:
    keys = prepared.keys
    return [CAN, keys.document_number, keys.date_of_birth, keys.date_of_expiry]


def assert_failed_with(verdict: Verdict, prepared: Prepared, *codes: str) -> None:
    """The verdict fails with exactly ``codes`` and names no personal value."""
    assert not verdict.passed and set(verdict.codes) == set(codes), verdict.reasons
    said = json.dumps([verdict.as_dict()["reasons"], verdict.as_dict()["skipped"]])
    assert not [value for value in personal_values(prepared) if value in said]


@pytest.mark.parametrize("parameter_id", [13, 12], ids=["brainpoolP256r1", "P-256"])
@pytest.mark.parametrize("access", [by_can, by_mrz], ids=["CAN", "MRZ"])
def test_good_eac_chip_passes(chip, prepared, trust, access, parameter_id) -> None:
    """A good EAC chip passes by CAN and by MRZ: PACE, PA, CA, TA, AA ran, DG3 read and checked."""
    verdict = run(chip(parameter_id=parameter_id), prepared, trust, access())
    assert verdict.passed, verdict.reasons
    assert verdict.protocols == FULL and verdict.as_dict()["protocols"] == list(FULL)
    assert verdict.skipped == ()
    assert {"EF.CardAccess", "EF.DG3", "EF.DG14", "EF.DG15"} <= set(verdict.as_dict()["files"])


def test_can_without_document_keys(chip, prepared, trust) -> None:
    """With the CAN alone DG1 is not compared with access keys, and the chip still passes."""
    verdict = run(chip(), prepared, trust, by_can(), no_keys=True)
    assert verdict.passed and verdict.protocols == FULL
    assert any("access keys" in note for note in verdict.skipped)


def test_dg3_is_never_asked_before_ta(chip, prepared, trust) -> None:
    """On a good chip no protected command is refused: DG3 is read only after TA."""
    spy = Spy(chip())
    assert run(spy, prepared, trust, by_can()).passed
    assert (True, 0x6982) not in spy.seen and any(protected for protected, _ in spy.seen)


@pytest.mark.parametrize("wrong", ["CAN", "MRZ"])
def test_wrong_password_is_pace_refused(chip, prepared, trust, wrong) -> None:
    """A wrong CAN or MRZ (one date off) fails pace_refused and nothing past PACE runs."""
    keys = prepared.keys
    other = keys_from_fields(keys.document_number, keys.date_of_birth, "301231")
    access = by_can("654321") if wrong == "CAN" else by_mrz()
    verdict = run(chip(), prepared, trust, access, keys=other if wrong == "MRZ" else None)
    assert_failed_with(verdict, prepared, "pace_refused")
    assert verdict.protocols == () and "EF.DG1" not in verdict.files


def test_chat_without_dg3_is_dg3_unreadable(chip, prepared, trust) -> None:
    """TA with a DG4-only CHAT passes, DG3 answers 6982 once, after TA: dg3_unreadable; the
    secure-messaging session stays open (6982 is no SM error) but AA is not tried."""
    card = chip()
    spy = Spy(card)
    verdict = run(spy, prepared, trust, by_can(terminal=cv_pki().terminal(ISRights.DG4)))
    assert_failed_with(verdict, prepared, "dg3_unreadable")
    assert verdict.reasons[0].detail == "SW 6982"
    assert verdict.protocols == ("PACE", "PA", "CA", "TA") and "EF.DG3" not in verdict.files
    assert spy.seen.count((True, 0x6982)) == 1 and spy.seen[-1] == (True, 0x6982)
    assert card.secure_session


def _foreign_dv(car: str) -> TerminalCredentials:
    """A DV certificate signed by a CVCA key the chip does not trust, under ``car``."""
    own = cv_pki()
    dv = own.issue("other", car, "dv", "VNDV000001", Role.DV_DOMESTIC)
    good = own.terminal()
    return TerminalCredentials((dv, good.chain[1]), good.signer)


@pytest.mark.parametrize("terminal", [
    lambda: _foreign_dv("XXCVCA00001"),
    lambda: _foreign_dv("VNCVCA00001"),
    lambda: cv_pki().terminal(expiry=date(2030, 5, 31)),
], ids=["unknown-CAR", "foreign-DV", "expired-IS"])
def test_bad_chain_is_ta_refused(chip, prepared, trust, terminal) -> None:
    """An unknown CAR, a DV from a foreign CVCA key or an expired IS certificate: ta_refused,
    DG3 never read."""
    verdict = run(chip(), prepared, trust, by_can(terminal=terminal()))
    assert_failed_with(verdict, prepared, "ta_refused")
    assert verdict.protocols == ("PACE", "PA", "CA") and "EF.DG3" not in verdict.files


def test_tampered_mac_is_sm_failed(chip, prepared, trust) -> None:
    """One flipped byte in a protected answer's MAC fails sm_failed; nothing after it runs."""
    verdict = run(FlipMAC(DirectTransport(chip())), prepared, trust, by_can())
    assert_failed_with(verdict, prepared, "sm_failed")
    assert verdict.protocols == ("PACE",)


def test_ca_key_other_than_dg14_is_ca_failed(chip, prepared, trust) -> None:
    """A DG14 (correctly signed) naming a key the chip does not hold fails ca_failed, no TA."""
    verdict = run(chip(other_ca_key=True), prepared, trust, by_can())
    assert_failed_with(verdict, prepared, "ca_failed")
    assert verdict.protocols == ("PACE", "PA")


def test_untrusted_sod_means_no_ca(chip, prepared, trust) -> None:
    """When passive authentication fails, DG14's key is not used: no CA, TA or DG3."""
    verdict = run(chip(), prepared, TrustStore((PKI().csca_der,)), by_can())
    assert_failed_with(verdict, prepared, "ds_not_trusted")
    assert verdict.protocols == ("PACE",) and "EF.DG3" not in verdict.files
    assert any("DG14's key is not trusted" in note for note in verdict.skipped)


def _requalify(groups: Groups) -> None:
    """DG3 re-encoded with each finger's quality changed: same images, other bytes."""
    records = decode_dg3(groups[3]).records
    groups[3] = encode_dg3([replace(r, fingers=tuple(replace(f, quality=f.quality ^ 1)
                                                     for f in r.fingers)) for r in records])


def test_dg3_differing_from_sod_is_dg3_hash_mismatch(chip, prepared, trust) -> None:
    """A DG3 changed after signing (images intact) fails dg3_hash_mismatch only; PA is not
    listed as passed."""
    verdict = run(chip(after_sign=_requalify), prepared, trust, by_can())
    assert_failed_with(verdict, prepared, "dg3_hash_mismatch")
    assert verdict.protocols == ("PACE", "CA", "TA", "AA")


@pytest.mark.parametrize("fingers", [
    {2: FINGERPRINTS[7], 7: FINGERPRINTS[2]},
    {2: FINGERPRINTS[2]},
    {2: FINGERPRINTS[2], 7: FINGERPRINTS[7][:-1] + b"\x00"},
], ids=["swapped", "one-finger", "one-byte"])
def test_dg3_other_than_application_is_dg3_mismatch(chip, prepared, trust, fingers) -> None:
    """Fingers swapped, missing or one byte off against the application: dg3_mismatch."""
    expected = replace(prepared.expected, fingerprints=fingers)
    verdict = run(chip(), prepared, trust, by_can(), expected=expected)
    assert_failed_with(verdict, prepared, "dg3_mismatch")
    assert verdict.protocols == FULL


def test_bac_chip_passes_the_old_path(make_card, prepared, trust) -> None:
    """Today's BAC chip, no EAC access given: passes with BAC, PA, AA."""
    verdict = run(make_card(), prepared, trust, None, expected=prepared.expected)
    assert verdict.passed and verdict.protocols == ("BAC", "PA", "AA")


def test_bac_chip_under_eac_access(make_card, prepared, trust) -> None:
    """A BAC chip asked for EAC: card_access_unreadable, unless BAC is allowed, then it passes
    with BAC (its missing fingerprints still fail when the application has them)."""
    card = make_card()
    refused = run(card, prepared, trust, by_mrz(), expected=prepared.expected)
    assert_failed_with(refused, prepared, "card_access_unreadable")
    card.power_on()
    allowed = run(card, prepared, trust, by_mrz(allow_bac=True), expected=prepared.expected)
    assert allowed.passed and allowed.protocols == ("BAC", "PA", "AA")
    card.power_on()
    fingers = run(card, prepared, trust, by_mrz(allow_bac=True))
    assert_failed_with(fingers, prepared, "dg3_mismatch")


def test_bac_fallback_refused(make_card, prepared, trust) -> None:
    """Wrong MRZ keys on the BAC fallback fail bac_refused (not the old path's bac_failed)."""
    wrong = keys_from_fields(prepared.keys.document_number, prepared.keys.date_of_birth, "301231")
    verdict = run(make_card(), prepared, trust, by_mrz(allow_bac=True), keys=wrong,
                  expected=prepared.expected)
    assert_failed_with(verdict, prepared, "bac_refused")


def test_pace_bac_chip_by_bac_fallback_is_not_used(chip, prepared, trust) -> None:
    """A chip offering PACE and BAC is opened with PACE even when BAC is allowed."""
    verdict = run(chip(protocols=AccessProtocols.PACE_BAC), prepared, trust,
                  by_mrz(allow_bac=True))
    assert verdict.passed and verdict.protocols == FULL


def test_desk_chain_drops_the_cvca() -> None:
    """The desk's DER chain (CVCA, DV, IS) is sent from the DV down: the chip holds its CVCA."""
    pki = cv_pki()
    good = pki.terminal()
    chain = [pki.cvca.encode(), *(c.encode() for c in good.chain)]
    credentials = terminal_credentials(chain, good.signer)
    assert [str(c.body.chr) for c in credentials.chain] == ["VNDV000001", "VNIS000001"]
    with pytest.raises(QAError):
        terminal_credentials([pki.cvca.encode()], good.signer)


def test_access_is_validated() -> None:
    """A CAN is six digits; without document keys only the CAN (no BAC) can open a chip."""
    with pytest.raises(AccessKeyError):
        by_can("12a456")
    with pytest.raises(AccessKeyError):
        by_can("1234567")
    with pytest.raises(QAError):
        verify_card(DirectTransport(VirtualEMRTD("X")), None, TrustStore((b"",)), at=AT,
                    access=by_mrz())


def test_every_new_code_has_both_messages() -> None:
    """Each EAC reason code exists with an English and a different Vietnamese message."""
    assert {r.value for r in Reason} >= NEW_CODES
    assert set(MESSAGES_VI) == set(MESSAGES) == set(Reason)
    for code in NEW_CODES:
        reason = Reason(code)
        assert MESSAGES[reason].endswith(".") and MESSAGES_VI[reason].endswith(".")
        assert MESSAGES[reason] != MESSAGES_VI[reason]


def test_report_shows_the_protocols(chip, prepared, trust) -> None:
    """The batch report counts the protocols the cards passed and the page shows them."""
    good = run(chip(), prepared, trust, by_can()).as_dict()
    bad = run(chip(), prepared, trust, by_can("000000")).as_dict()
    report = build_report("B-EAC", [("card-1", good), ("card-2", bad)], AT)
    assert report["protocols"] == {"PACE PA CA TA AA": 1, "": 1}
    assert report["failed_cards"][0]["protocols"] == ""
    assert "PACE PA CA TA AA" in render_html(report)


def test_recheck_in_the_same_session_and_bench(chip, prepared, trust) -> None:
    """Checks repeated without a power cycle pass (the old session ends, SELECT MF, then
    EF.CardAccess), so `cardline bench` can time the full EAC check."""
    figures = measure(DirectTransport(chip()), None, trust, at=AT, cards=2,
                      expected=expected_with_fingers(prepared), access=by_can())
    assert figures["qa_apdus_per_card"] > 0 and figures["qa_ms_per_card"] > 0
