"""Chips that fight back, through verify_card and `cardline qa verify`: each hostile mode fails
with its own reason code before the deadline, nothing escapes but a vanished reader, good cards
pass."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from applets.emrtd import reader
from applets.emrtd.lds.files import EF_SOD
from applets.emrtd.lds.sod import parse_sod
from applets.errors import CardError, LDSError, ResponseTooLongError, StatusWordError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import DirectTransport, Transport
from applets.transport.pcsc import CardRemovedError, PCSCServiceError, PCSCTransport, ReaderNotFound
from applets.virtual import hostile
from applets.virtual.bank import EncoderBank
from applets.virtual.card import VirtualEMRTD
from applets.virtual.hostile import Hostile
from applets.virtual.store import ChipStore
from hsm import certificates as certs
from hsm.certificates import certificate_to_pem
from qa import passive_auth
from qa.errors import QAError, ReaderUnavailableError
from qa.passive_auth import TrustStore
from qa.readback import DeadlineError
from qa.verify import Verdict, verify_card
from tests.qa.cards import AT, PKI, Prepared, personalize, signer_of

ROOT = Path(__file__).resolve().parents[2]
MakeCard = Callable[..., VirtualEMRTD]
# The reason each mode must produce (the DG15 modes fail decoding DG15: dg_malformed).
MODES: dict[Hostile, str] = {
    Hostile.GET_RESPONSE_FOREVER: "read_failed",
    Hostile.HUGE_FILE: "read_failed",
    Hostile.UNKNOWN_OID_DG15: "dg_malformed",
    Hostile.RSA_32768: "dg_malformed",
    Hostile.GARBAGE_TLV: "malformed",
    Hostile.WRONG_LENGTH: "malformed",
    Hostile.LONGER_THAN_LE: "response_too_long",
    Hostile.SLOW: "deadline",
}
DEADLINE_S = 5.0
SLOW_DEADLINE_S = 0.5  # a slow chip answers every 0.1 s: about five APDUs


def deadline_for(mode: Hostile | None) -> float:
    """The deadline a check of this mode runs under."""
    return SLOW_DEADLINE_S if mode is Hostile.SLOW else DEADLINE_S


def check(transport: Transport, prepared: Prepared, trust: TrustStore, **options: Any) -> Verdict:
    """verify_card in line mode with the prepared expectations."""
    return verify_card(transport, prepared.keys, trust, at=AT, expected=prepared.expected,
                       rng=os.urandom, **options)


# --- in process --------------------------------------------------------------------------------

@pytest.mark.parametrize("max_data", [65535, 255], ids=["extended", "short"])
@pytest.mark.parametrize("mode", list(MODES), ids=str)
def test_hostile_chip_fails_with_its_code(make_card: MakeCard, prepared: Prepared,
                                          trust: TrustStore, record_property: Any,
                                          mode: Hostile, max_data: int) -> None:
    """Each hostile mode gives a failing verdict with its reason code, before the deadline."""
    card = make_card(max_command_data=max_data)
    card.memory.hostile = mode
    started = time.perf_counter()
    verdict = check(DirectTransport(card, max_data), prepared, trust,
                    deadline_s=deadline_for(mode))
    elapsed = time.perf_counter() - started
    record_property("seconds", round(elapsed, 3))
    assert not verdict.passed and MODES[mode] in verdict.codes, verdict.reasons
    assert elapsed < deadline_for(mode) + hostile.SLOW_SECONDS


def test_good_card_passes_within_the_bounds(make_card: MakeCard, prepared: Prepared,
                                            trust: TrustStore) -> None:
    """A good card passes under a deadline with DG2 capped at the profile's 15 000-byte budget."""
    verdict = check(DirectTransport(make_card()), prepared, trust, deadline_s=DEADLINE_S,
                    max_file_bytes={"EF.DG2": 15_000})
    assert verdict.passed, verdict.reasons


def test_one_cap_for_every_file(make_card: MakeCard, prepared: Prepared,
                                trust: TrustStore) -> None:
    """A single cap smaller than EF.SOD fails the card read_failed naming EF.SOD."""
    verdict = check(DirectTransport(make_card()), prepared, trust, max_file_bytes=200)
    assert verdict.codes[0] == "read_failed" and "EF.SOD" in verdict.reasons[0].detail


def test_responses_exactly_at_le_are_data(make_card: MakeCard, prepared: Prepared,
                                          trust: TrustStore,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """On the short path DG2 arrives in 223-byte answers exactly at Le, and the card passes."""
    seen: list[tuple[int, int | None]] = []
    original = reader.check_length

    def spy(command: CommandAPDU, response: ResponseAPDU, name: str = "") -> ResponseAPDU:
        seen.append((len(response.data), command.ne))
        return original(command, response, name)

    monkeypatch.setattr(reader, "check_length", spy)
    verdict = check(DirectTransport(make_card(max_command_data=255), 255), prepared, trust)
    assert verdict.passed, verdict.reasons
    assert sum(1 for got, ne in seen if got == ne == reader.SM_SHORT_BLOCK) > 50


def test_deadline_on_a_fake_clock(make_card: MakeCard, prepared: Prepared,
                                  trust: TrustStore) -> None:
    """With a clock that ticks once per reading, a 3-tick deadline stops after two APDUs."""
    ticks = itertools.count()
    verdict = check(DirectTransport(make_card()), prepared, trust,
                    clock=lambda: float(next(ticks)), deadline_s=3.0)
    assert verdict.codes == ["deadline"] and verdict.apdus == 2


def test_deadline_zero_sends_nothing(make_card: MakeCard, prepared: Prepared,
                                     trust: TrustStore) -> None:
    """A deadline already passed fails the card 'deadline' without a single APDU."""
    verdict = check(DirectTransport(make_card()), prepared, trust, deadline_s=0.0)
    assert verdict.codes == ["deadline"] and verdict.apdus == 0


class Failing:
    """Forwards to the card until APDU number ``at`` (1-based), which raises ``error``."""

    def __init__(self, card: VirtualEMRTD, at: int, error: BaseException) -> None:
        self.inner = DirectTransport(card)
        self.at = at
        self.error = error
        self.count = 0

    @property
    def max_command_data(self) -> int:
        return self.inner.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        self.count += 1
        if self.count == self.at:
            raise self.error
        return self.inner.transmit(command)


ERRORS = [
    (KeyError("1.2.3.4"), "malformed"),
    (ValueError("bad DER"), "malformed"),
    (TypeError("None"), "malformed"),
    (RuntimeError("anything else"), "malformed"),
    (TLVError("truncated"), "malformed"),
    (LDSError("EF.DG1", "broken"), "malformed"),
    (StatusWordError(0x6F00, "X"), "read_failed"),
    (CardError("refused"), "read_failed"),
    (QAError("odd"), "read_failed"),
    (CardRemovedError("R", "pulled"), None),
    (ResponseTooLongError("X", 8, 72), "response_too_long"),
    (DeadlineError(3), "deadline"),
]


@pytest.mark.parametrize("at", [1, 12], ids=["access", "reading"])
@pytest.mark.parametrize(("error", "code"), ERRORS, ids=lambda v: type(v).__name__)
def test_any_failure_is_the_cards_verdict(make_card: MakeCard, prepared: Prepared,
                                          trust: TrustStore, error: Exception, code: str | None,
                                          at: int) -> None:
    """Whatever a check raises becomes a failing verdict with a code; a card that left the reader
    is still an operational error, as before."""
    transport = Failing(make_card(), at, error)
    if code is None:
        with pytest.raises(ReaderUnavailableError):
            check(transport, prepared, trust)
        return
    verdict = check(transport, prepared, trust)
    assert not verdict.passed and code in verdict.codes, verdict.reasons


def test_a_foreign_error_message_stays_out_of_the_verdict(make_card: MakeCard,
                                                          prepared: Prepared,
                                                          trust: TrustStore) -> None:
    """Another library's message may quote chip data: only its type name reaches the verdict."""
    error = ValueError("NGUYEN VAN AN 930105")
    verdict = check(Failing(make_card(), 12, error), prepared, trust)
    assert verdict.reasons[-1].code == "malformed" and verdict.reasons[-1].detail == "ValueError"


@pytest.mark.parametrize("error", [ReaderNotFound("R", "gone"), PCSCServiceError("R", "down")],
                         ids=lambda v: type(v).__name__)
def test_a_vanished_reader_still_raises(make_card: MakeCard, prepared: Prepared,
                                        trust: TrustStore, error: Exception) -> None:
    """ReaderNotFound and PCSCServiceError propagate (as the cause of ReaderUnavailableError)."""
    with pytest.raises(ReaderUnavailableError) as caught:
        check(Failing(make_card(), 12, error), prepared, trust)
    assert caught.value.__cause__ is error


def test_keyboard_interrupt_is_not_a_verdict(make_card: MakeCard, prepared: Prepared,
                                             trust: TrustStore) -> None:
    """Ctrl-C during a check stops the check; it is never turned into a verdict."""
    with pytest.raises(KeyboardInterrupt):
        check(Failing(make_card(), 5, KeyboardInterrupt()), prepared, trust)


class LongChallenge(DirectTransport):
    """GET CHALLENGE answered with 64 bytes beyond its Le of 8."""

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        response = super().transmit(command)
        if command.ins == 0x84:
            return ResponseAPDU(response.data + bytes(hostile.EXTRA_BYTES), response.sw)
        return response


def test_plain_response_beyond_le_before_bac(make_card: MakeCard, prepared: Prepared,
                                             trust: TrustStore) -> None:
    """A plain GET CHALLENGE answer longer than Le fails response_too_long, not bac_failed."""
    verdict = check(LongChallenge(make_card()), prepared, trust)
    assert verdict.codes == ["response_too_long"]


def _ds_with_spki(pki: PKI, spki_der: bytes) -> bytes:
    tbs = certs.load_certificate(pki.ds_der)["tbs_certificate"]
    validity = (tbs["validity"]["not_before"].native, tbs["validity"]["not_after"].native)
    builder = certs.TBSBuilder(tbs["serial_number"].native, tbs["issuer"], tbs["subject"],
                               validity, spki_der, certs.subject_public_key_info(pki.csca_der),
                               tuple(tbs["extensions"]))
    return builder.sign(signer_of(pki.csca_key))


def _spki(dg15: bytes) -> bytes:
    return tlv.decode_single(dg15, 0x6F).value


def test_unknown_oid_in_the_sod_certificate(make_card: MakeCard, prepared: Prepared, pki: PKI,
                                            trust: TrustStore) -> None:
    """A DS certificate with an unknown key algorithm is a CertificateError and a verdict."""
    ds = _ds_with_spki(pki, _spki(hostile.unknown_oid_dg15()))
    with pytest.raises(certs.CertificateError, match=hostile.UNKNOWN_OID):
        certs.load_certificate(ds)
    facts = passive_auth.signer_facts(ds, trust)
    assert [f.code for f in facts.findings] == ["ds_certificate_invalid"]
    verdict = check(DirectTransport(make_card(signer=pki.signer(ds))), prepared, trust)
    assert "sod_malformed" in verdict.codes


def test_ds_rsa_key_beyond_the_bound(make_card: MakeCard, prepared: Prepared, pki: PKI) -> None:
    """A DS certificate with a 32768-bit RSA key is refused before the signature is checked."""
    ds = _ds_with_spki(pki, _spki(hostile.rsa_32768_dg15()))
    card = make_card()
    sod = parse_sod(bytes(card.memory.files[EF_SOD.fid]))
    started = time.perf_counter()
    findings = passive_auth.check_signature(sod, ds)
    assert [f.code for f in findings] == ["ds_certificate_invalid"]
    assert "32768 bits" in findings[0].detail and time.perf_counter() - started < 0.5


# --- through pcscd and the CLI -------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from personalization.cli import main; main()", "qa", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Path:
    """The CSCA as the PEM file `--trust` takes."""
    path = tmp_path_factory.mktemp("hostile") / "csca.pem"
    path.write_text(certificate_to_pem(pki.csca_der))
    return path


def _stored_chip(bank: EncoderBank, prepared: Prepared, pki: PKI, mode: Hostile | None) -> str:
    """A chip personalized in process straight into the bank's store, then made hostile."""
    store = ChipStore(bank.chips_dir)
    serial = store.create_blanks(1, "QAHOSTILE")[0]
    card = store.open(serial)
    card.power_on()
    personalize(DirectTransport(card), prepared, pki.signer())
    card.power_off()
    store.set_hostile(serial, mode)
    return serial


@contextmanager
def _inserted(bank: EncoderBank, serial: str) -> Iterator[str]:
    client = bank.client()
    index = next(i for i, s in client.status().items() if s is None)
    client.insert(index, serial)
    name = bank.reader_name(index)
    try:
        yield name
    finally:
        client.remove(index)
        with PCSCTransport(name) as transport:
            transport.wait_for_removal(5.0)  # pcscd notices on its next poll


def _verify_by_cli(bank: EncoderBank, prepared: Prepared, pki: PKI, pem: Path,
                   mode: Hostile | None) -> tuple[subprocess.CompletedProcess[str], float]:
    serial = _stored_chip(bank, prepared, pki, mode)
    with _inserted(bank, serial) as name:
        started = time.perf_counter()
        result = _cli("verify", "--reader", name, "--mrz", prepared.data.mrz.text, "--trust",
                      str(pem), "--json", "--wait", "5", "--deadline", str(deadline_for(mode)))
        return result, time.perf_counter() - started


@pytest.mark.pcscd
@pytest.mark.parametrize("mode", list(MODES), ids=str)
def test_cli_fails_a_hostile_chip_with_its_code(encoder_bank: EncoderBank, prepared: Prepared,
                                                pki: PKI, pem: Path, record_property: Any,
                                                mode: Hostile) -> None:
    """`cardline qa verify --json` exits 1 with the mode's reason code, in time, no traceback."""
    result, elapsed = _verify_by_cli(encoder_bank, prepared, pki, pem, mode)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    record_property("seconds", round(report["ms"] / 1000, 3))
    record_property("process_seconds", round(elapsed, 3))
    assert report["verdict"] == "fail"
    assert MODES[mode] in [reason["code"] for reason in report["reasons"]], report["reasons"]
    assert report["ms"] < (deadline_for(mode) + hostile.SLOW_SECONDS) * 1000


@pytest.mark.pcscd
def test_cli_passes_a_good_chip_under_a_deadline(encoder_bank: EncoderBank, prepared: Prepared,
                                                 pki: PKI, pem: Path) -> None:
    """A well-behaved chip still passes `qa verify --deadline` (exit 0, no reasons)."""
    result, _ = _verify_by_cli(encoder_bank, prepared, pki, pem, None)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reasons"] == []
