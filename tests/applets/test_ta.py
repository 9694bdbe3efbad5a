"""Terminal Authentication v1 (BSI TR-03110): the chip's chain decisions, the signature over
ID_PICC ‖ r_PICC ‖ Comp(PK_PCD), and the terminal's APDUs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import cvc, eac_oids, ta
from applets.emrtd.cvc import CHAT, ISRights, Reference, Role
from applets.emrtd.ta import TAChip, TAError, TAReason
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from common import curves

EAC = Path(__file__).resolve().parent.parent / "vectors" / "eac"
BSI = EAC / "bsi-worked-example-certs"
W = json.loads((EAC / "vectors.json").read_text())["bsi_eac_worked_example_v1_01_ecdh"]
SHA256 = eac_oids.ID_TA_ECDSA_SHA_256
CURVE = curves.SECP256R1
DAY = date(2030, 6, 1)  # the chip's date in the built-PKI tests
BSI_DAY = date(2010, 10, 1)  # inside the worked example's validity periods
ID_PICC = ta.comp(bytes.fromhex(W["picc_pub_key"]))  # after PACE: Comp(PACE PK_PICC)
COMP_PCD = ta.comp(bytes.fromhex(W["ca_pcd_pub_key"]))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def bsi(name: str) -> cvc.CVCertificate:
    return cvc.CVCertificate.decode((BSI / name).read_bytes())


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    return b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def rng_giving(value: bytes):
    """An rng that answers with ``value`` (the chip's r_PICC)."""
    def rng(n: int) -> bytes:
        assert n == len(value)
        return value
    return rng


KEYS = {name: ec.generate_private_key(CURVE.crypto_curve())
        for name in ("cvca", "cvca2", "dv", "dvf", "is", "other")}


def issue(signer: str, car: str, subject: str, chr_: str, role: Role,
          rights: ISRights = ISRights.DG3 | ISRights.DG4, effective: date = date(2030, 1, 1),
          expiry: date = date(2031, 1, 1)) -> cvc.CVCertificate:
    """A P-256 certificate for KEYS[subject] signed by KEYS[signer]."""
    domain = cvc.DomainParameters.from_curve(CURVE) if role is Role.CVCA else None
    body = cvc.CertificateBody(Reference.parse(car), cvc.PublicKey(SHA256, point(KEYS[subject]),
                               domain), Reference.parse(chr_), CHAT.inspection_system(role, rights),
                               effective, expiry)
    return cvc.sign_body(body, cvc.software_signer(KEYS[signer], SHA256))


CVCA = issue("cvca", "VNCVCA00001", "cvca", "VNCVCA00001", Role.CVCA,
             effective=date(2029, 1, 1), expiry=date(2032, 1, 1))


def chip(day: date = DAY) -> TAChip:
    return TAChip(ta.trust_point(CVCA), day)


def submit(card: TAChip, cert: cvc.CVCertificate) -> ta.ChainKey:
    """MSE:Set DST with the certificate's CAR, then PSO:Verify Certificate."""
    card.set_dst(str(cert.body.car))
    return card.verify_certificate(cert.pso_data())


def refused(reason: TAReason, call, *args) -> TAError:
    with pytest.raises(TAError) as caught:
        call(*args)
    assert caught.value.reason is reason
    return caught.value


def bsi_chip() -> TAChip:
    return TAChip(ta.trust_point(bsi("DECVCAAT00001")), BSI_DAY)


def test_bsi_chain_accepted_with_pinned_date():
    """The chip on 2010-10-01 accepts DV and terminal; the terminal key is the certificate's."""
    card = bsi_chip()
    assert submit(card, bsi("DETESTDVDE019")).role is Role.DV_DOMESTIC
    terminal = submit(card, bsi("DETESTATDE019"))
    assert terminal.point == bsi("DETESTATDE019").body.public_key.point
    assert terminal.curve is curves.BRAINPOOL_P512R1
    assert terminal.algorithm == eac_oids.ID_TA_ECDSA_SHA_512
    # the example's CVCA is id-IS while DV and terminal are id-AT: no eMRTD rights follow
    assert terminal.rights is ISRights.NONE and terminal.chat.template == bytes(5)


def test_bsi_chain_refused_once_expired():
    """On 2010-11-01 the DV certificate (expired 2010-10-30) is refused."""
    card = TAChip(ta.trust_point(bsi("DECVCAAT00001")), date(2010, 11, 1))
    error = refused(TAReason.EXPIRED, submit, card, bsi("DETESTDVDE019"))
    assert error.sw != 0x9000


def test_bsi_signature_input():
    """x(PACE PK_PICC) ‖ r_PICC ‖ x(CA PK_PCD) is the worked example's TA signature input."""
    assert ta.signature_input(ID_PICC, h(W["ta_nonce"]), COMP_PCD) == h(W["ta_signature_input"])


def test_bsi_terminal_signature_verified_by_chip():
    """The worked example's terminal signature passes EXTERNAL AUTHENTICATE; a changed
    byte, another challenge or another ID_PICC fail."""
    signature = h(W["ta_pcd_signature"])
    for sig, nonce, id_picc, ok in ((signature, W["ta_nonce"], ID_PICC, True),
                                    (signature[:-1] + b"\x00", W["ta_nonce"], ID_PICC, False),
                                    (signature, "00" * 8, ID_PICC, False),
                                    (signature, W["ta_nonce"], bytes(32), False)):
        card = bsi_chip()
        submit(card, bsi("DETESTDVDE019"))
        submit(card, bsi("DETESTATDE019"))
        card.set_at("DETESTATDE019")
        card.get_challenge(rng_giving(h(nonce)))
        if ok:
            assert str(card.external_authenticate(sig, id_picc, COMP_PCD).reference) \
                == "DETESTATDE019"
        else:
            refused(TAReason.BAD_TERMINAL_SIGNATURE, card.external_authenticate, sig, id_picc,
                    COMP_PCD)


class TACard:
    """A test card: decodes each APDU and hands it to a TAChip (answers 9000 or the refusal)."""

    def __init__(self, card: TAChip, r_picc: bytes) -> None:
        self.card, self.r_picc = card, r_picc
        self.max_command_data = 65535
        self.authenticated: ta.ChainKey | None = None

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        command = CommandAPDU.decode(command.encode())
        try:
            return ResponseAPDU(self._run(command), 0x9000)
        except TAError as exc:
            return ResponseAPDU(b"", exc.sw or 0x6F00)

    def _run(self, c: CommandAPDU) -> bytes:
        header = (c.ins, c.p1, c.p2)
        if header == (0x22, 0x81, 0xB6):
            self.card.set_dst(tlv.find(c.data, 0x83).decode())
        elif header == (0x2A, 0x00, 0xBE):
            self.card.verify_certificate(c.data)
        elif header == (0x22, 0x81, 0xA4):
            self.card.set_at(tlv.find(c.data, 0x83).decode())
        elif c.ins == 0x84:
            return self.card.get_challenge(rng_giving(self.r_picc))
        elif c.ins == 0x82:
            self.authenticated = self.card.external_authenticate(c.data, ID_PICC, COMP_PCD)
        return b""


def test_terminal_side_against_chip_with_bsi_chain_and_key():
    """perform_ta with the worked example's chain (extended APDUs) and terminal key
    authenticates to the chip."""
    key = ec.derive_private_key(int(W["ta_terminal_private_d"], 16),
                                curves.BRAINPOOL_P512R1.crypto_curve())
    assert point(key) == bsi("DETESTATDE019").body.public_key.point
    card = TACard(bsi_chip(), h(W["ta_nonce"]))
    ta.perform_ta(card, [bsi("DETESTDVDE019"), bsi("DETESTATDE019")],
                  cvc.software_signer(key, eac_oids.ID_TA_ECDSA_SHA_512), ID_PICC, COMP_PCD)
    assert card.authenticated is not None


class Script:
    """Records each command and answers from a list of responses."""

    def __init__(self, *answers: ResponseAPDU) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []
        self.max_command_data = 65535

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        self.sent.append(command.encode())
        return self.answers.pop(0)


def test_terminal_apdu_sequence_byte_exact():
    """MSE:Set DST / PSO per certificate, MSE:Set AT, GET CHALLENGE, EXTERNAL AUTHENTICATE."""
    dv = issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC)
    term = issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL)
    ok, r_picc = ResponseAPDU(b"", 0x9000), h("0102030405060708")
    script = Script(ok, ok, ok, ok, ok, ResponseAPDU(r_picc, 0x9000), ok)
    ta.perform_ta(script, [dv, term], cvc.software_signer(KEYS["is"], SHA256), b"ID", b"X")
    pso = [tlv.decode_single(c.encode(), 0x7F21).value for c in (dv, term)]  # body ‖ 5F37
    assert max(map(len, pso)) < 256  # short Lc
    expected = [h("002281B60D830B") + b"VNCVCA00001", h("002A00BE") + bytes([len(pso[0])]) + pso[0],
                h("002281B60D830B") + b"VNDVMPS0001", h("002A00BE") + bytes([len(pso[1])]) + pso[1],
                h("002281A40D830B") + b"VNISHN00001", h("0084000008")]
    assert script.sent[:6] == expected
    assert script.sent[6][:5] == h("0082000040")
    cvc.verify_plain(point(KEYS["is"]), CURVE, SHA256, b"ID" + r_picc + b"X", script.sent[6][5:])


def test_terminal_reports_the_refusing_step():
    """A card answering 6A88 to MSE:Set DST stops TA with that SW and the step's name."""
    script = Script(ResponseAPDU(b"", 0x6A88))
    dv = issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC)
    error = refused(TAReason.CARD_REFUSED, ta.perform_ta, script, [dv],
                    cvc.software_signer(KEYS["is"], SHA256), b"", b"")
    assert error.sw == 0x6A88 and error.step == "MSE:Set DST VNCVCA00001"


def test_terminal_refuses_a_short_challenge():
    """GET CHALLENGE answering 4 bytes is refused before anything is signed."""
    ok = ResponseAPDU(b"", 0x9000)
    term = issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL)
    script = Script(ok, ok, ok, ResponseAPDU(bytes(4), 0x9000))
    refused(TAReason.BAD_CHALLENGE, ta.perform_ta, script, [term],
            cvc.software_signer(KEYS["is"], SHA256), b"", b"")


def test_unknown_car_refused_with_6a88():
    """MSE:Set DST naming a key the chip does not hold answers 6A88."""
    assert refused(TAReason.UNKNOWN_REFERENCE, chip().set_dst, "VNCVCA00009").sw == 0x6A88


def test_bad_certificate_signature_refused():
    """A DV certificate signed by a key other than the CVCA's is refused."""
    forged = issue("other", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC)
    refused(TAReason.BAD_CERTIFICATE_SIGNATURE, submit, chip(), forged)


def test_certificate_without_mse_set_dst_refused():
    """PSO:Verify Certificate needs a fresh MSE:Set DST; its CAR must match the selection."""
    dv = issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC)
    card = chip()
    refused(TAReason.NO_ISSUER_SELECTED, card.verify_certificate, dv.pso_data())
    submit(card, dv)
    card.set_dst("VNDVMPS0001")
    refused(TAReason.CAR_MISMATCH, card.verify_certificate, dv.pso_data())


def test_roles_must_follow_the_pki():
    """A terminal certificate straight from the CVCA, or a DV issued by a DV, is refused."""
    refused(TAReason.WRONG_ROLE, submit, chip(),
            issue("cvca", "VNCVCA00001", "is", "VNISHN00001", Role.TERMINAL))
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC))
    refused(TAReason.WRONG_ROLE, submit, card,
            issue("dv", "VNDVMPS0001", "dvf", "VNDVSUB0001", Role.DV_FOREIGN))


def test_foreign_dv_accepted_but_never_moves_the_date():
    """A foreign DV and its terminal are accepted, and their later effective dates leave
    the chip's date where it was (only domestic certificates are trusted for time)."""
    card = chip()
    later = DAY + timedelta(days=20)
    dvf = issue("cvca", "VNCVCA00001", "dvf", "DEDVBKA0001", Role.DV_FOREIGN, effective=later)
    assert submit(card, dvf).role is Role.DV_FOREIGN and card.current_date == DAY
    term = issue("dvf", "DEDVBKA0001", "is", "DEISBPOL001", Role.TERMINAL, effective=later)
    assert submit(card, term).issuer_role is Role.DV_FOREIGN and card.current_date == DAY


def test_date_moves_forward_only_with_domestic_certificates():
    """A domestic DV moves the date to its later effective date, a domestic terminal further;
    an earlier effective date never moves it back."""
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC,
                       effective=DAY + timedelta(days=3)))
    assert card.current_date == DAY + timedelta(days=3)
    submit(card, issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL,
                       effective=DAY + timedelta(days=9)))
    assert card.current_date == DAY + timedelta(days=9)
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC,
                       effective=DAY - timedelta(days=100)))
    assert card.current_date == DAY


def test_expired_terminal_certificate_refused():
    """A terminal certificate that expired before the chip's date is refused."""
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC))
    expired = issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL,
                    effective=date(2029, 1, 1), expiry=DAY - timedelta(days=1))
    refused(TAReason.EXPIRED, submit, card, expired)


def test_expired_cvca_link_certificate_accepted_and_rolls_over():
    """An expired link certificate is still accepted and becomes the trust point: DVs of the
    new CVCA key verify, the old CAR is no longer known."""
    card = chip()
    link = issue("cvca", "VNCVCA00001", "cvca2", "VNCVCA00002", Role.CVCA,
                 effective=date(2029, 6, 1), expiry=DAY - timedelta(days=1))
    submit(card, link)
    assert str(card.trust_point.reference) == "VNCVCA00002"
    assert card.trust_point.point == point(KEYS["cvca2"]) and card.trust_point.curve is CURVE
    submit(card, issue("cvca2", "VNCVCA00002", "dv", "VNDVMPS0002", Role.DV_DOMESTIC))
    refused(TAReason.UNKNOWN_REFERENCE, card.set_dst, "VNCVCA00001")


def test_effective_rights_are_the_and_of_the_chain():
    """DV without DG3 under a full CVCA: the terminal gets DG4 only even if it claims DG3."""
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC,
                       rights=ISRights.DG4))
    terminal = submit(card, issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL))
    assert terminal.rights == ISRights.DG4
    assert not terminal.rights & ISRights.DG3
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC))
    terminal = submit(card, issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL,
                                  rights=ISRights.DG4))
    assert terminal.rights is ISRights.DG4


def test_external_authenticate_needs_set_at_and_a_fresh_challenge():
    """Without MSE:Set AT of the verified terminal, or a second time on one challenge,
    EXTERNAL AUTHENTICATE is refused."""
    card = chip()
    submit(card, issue("cvca", "VNCVCA00001", "dv", "VNDVMPS0001", Role.DV_DOMESTIC))
    submit(card, issue("dv", "VNDVMPS0001", "is", "VNISHN00001", Role.TERMINAL))
    refused(TAReason.UNKNOWN_REFERENCE, card.set_at, "VNISOTHER001")
    r_picc = card.get_challenge(rng_giving(bytes(8)))
    refused(TAReason.NO_CHALLENGE, card.external_authenticate, b"", b"", b"")
    card.set_at("VNISHN00001")
    card.get_challenge(rng_giving(r_picc))
    signature = cvc.software_signer(KEYS["is"], SHA256)(ta.signature_input(b"I", r_picc, b"C"))
    assert card.external_authenticate(signature, b"I", b"C").rights == ISRights.DG3 | ISRights.DG4
    refused(TAReason.NO_CHALLENGE, card.external_authenticate, signature, b"I", b"C")


def test_id_picc_after_bac_is_document_number_and_check_digit():
    """ID_PICC after BAC: the MRZ document number (padded to 9) and its check digit."""
    assert ta.id_picc_bac("L898902C") == b"L898902C<3"


def test_malformed_certificates_and_keys_refused():
    """Garbage PSO data, and a well-signed DV certificate whose point is off the curve, are
    refused (6A80) before any key is imported."""
    card = chip()
    card.set_dst("VNCVCA00001")
    assert refused(TAReason.MALFORMED_CERTIFICATE, card.verify_certificate, h("7F4E00")).sw \
        == 0x6A80
    body = cvc.CertificateBody(Reference.parse("VNCVCA00001"),
                               cvc.PublicKey(SHA256, b"\x04" + bytes(64)),
                               Reference.parse("VNDVMPS0001"),
                               CHAT.inspection_system(Role.DV_DOMESTIC), DAY, DAY)
    bad = cvc.sign_body(body, cvc.software_signer(KEYS["cvca"], SHA256))
    refused(TAReason.MALFORMED_KEY, submit, card, bad)
    refused(TAReason.UNKNOWN_REFERENCE, card.set_dst, "VNDVMPS0001")
