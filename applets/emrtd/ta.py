"""Terminal Authentication v1 (BSI TR-03110-1 §2.4 / TR-03110-3 §2.4 and App. B.11;
ICAO 9303-11 §7.1): the chip's certificate-chain decisions, the signature both sides compute,
and the terminal's APDU sequence over a :class:`Transport`.

The chip side is a pure state machine (:class:`TAChip`): it is given its trust point and its
current date and answers each command with a value or a :class:`TAError` whose reason carries
the status word a chip would send. A caller holding a real card only ever needs "not 9000".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum

from applets.emrtd.cvc import (
    CHAT,
    CVCError,
    CVCertificate,
    ISRights,
    Reference,
    Role,
    SignatureError,
    Signer,
    hash_for,
    public_key,
    verify_plain,
)
from applets.emrtd.lds.checkdigit import check_digit
from applets.errors import CardError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from common.curves import Curve

RNG = Callable[[int], bytes]
CHALLENGE = 8  # TR-03110-3 B.11.5: GET CHALLENGE returns an 8-byte r_PICC
# TR-03110-3 §2.1–2.2 (PKI roles): a CVCA issues CVCA link and DV certificates, a DV
# issues terminal certificates.
_ISSUES: dict[Role, frozenset[Role]] = {
    Role.CVCA: frozenset({Role.CVCA, Role.DV_DOMESTIC, Role.DV_FOREIGN}),
    Role.DV_DOMESTIC: frozenset({Role.TERMINAL}),
    Role.DV_FOREIGN: frozenset({Role.TERMINAL}),
    Role.TERMINAL: frozenset(),
}


class TAReason(Enum):
    """Why Terminal Authentication stopped."""

    NO_ISSUER_SELECTED = "no_issuer_selected"  # PSO:Verify Certificate without MSE:Set DST
    UNKNOWN_REFERENCE = "unknown_reference"  # a CAR (or CHR) naming no key the chip holds
    MALFORMED_CERTIFICATE = "malformed_certificate"
    MALFORMED_KEY = "malformed_key"  # a point off the curve, or not id-TA-ECDSA-SHA-*
    CAR_MISMATCH = "car_mismatch"  # the certificate's CAR is not the key MSE:Set DST chose
    WRONG_ROLE = "wrong_role"  # e.g. a DV certificate issued by a DV
    BAD_CERTIFICATE_SIGNATURE = "bad_certificate_signature"
    EXPIRED = "expired"
    NO_CHALLENGE = "no_challenge"  # EXTERNAL AUTHENTICATE without MSE:Set AT + GET CHALLENGE
    BAD_TERMINAL_SIGNATURE = "bad_terminal_signature"
    CARD_REFUSED = "card_refused"  # terminal side: the card answered other than 9000
    BAD_CHALLENGE = "bad_challenge"  # terminal side: GET CHALLENGE did not give 8 bytes


# The status word a chip answers for each refusal (chips differ: callers test "not 9000").
_SW: dict[TAReason, int] = {
    TAReason.NO_ISSUER_SELECTED: SW.CONDITIONS_NOT_SATISFIED,
    TAReason.UNKNOWN_REFERENCE: SW.REFERENCE_DATA_NOT_FOUND,  # 6A88, as PersoSim answers
    TAReason.MALFORMED_CERTIFICATE: SW.WRONG_DATA,
    TAReason.MALFORMED_KEY: SW.WRONG_DATA,
    TAReason.CAR_MISMATCH: SW.WRONG_DATA,
    TAReason.WRONG_ROLE: SW.WRONG_DATA,
    TAReason.BAD_CERTIFICATE_SIGNATURE: SW.VERIFICATION_FAILED,
    TAReason.EXPIRED: SW.DATA_INVALID,
    TAReason.NO_CHALLENGE: SW.CONDITIONS_NOT_SATISFIED,
    TAReason.BAD_TERMINAL_SIGNATURE: SW.VERIFICATION_FAILED,
}


class TAError(CardError):
    """Terminal Authentication failed; ``reason`` and ``sw`` say where, ``step`` names the
    command (terminal side)."""

    def __init__(self, reason: TAReason, detail: str = "", sw: int | None = None,
                 step: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.sw = sw if sw is not None else _SW.get(reason)
        self.step = step
        super().__init__(f"TA {reason.name}" + (f" at {step}" if step else "")
                         + (f": {detail}" if detail else ""))


@dataclass(frozen=True, slots=True)
class ChainKey:
    """A public key the chip trusts: the trust point, or one verified in this session.

    ``chat`` is the effective authorization up to this key; ``issuer_role`` is the role of
    the key that signed it (None for the trust point).
    """

    reference: Reference
    point: bytes
    curve: Curve
    algorithm: str
    role: Role
    chat: CHAT
    issuer_role: Role | None = None

    @property
    def rights(self) -> ISRights:
        """The effective DG3/DG4 rights (none unless every CHAT on the chain was id-IS)."""
        return self.chat.rights


def trust_point(cvca: CVCertificate) -> ChainKey:
    """The chip's trust point from a CVCA certificate carrying its domain parameters."""
    key = cvca.body.public_key
    if key.domain is None or cvca.body.chat.role is not Role.CVCA:
        raise CVCError("public key", "a trust point needs a CVCA certificate with parameters")
    return ChainKey(cvca.body.chr, key.point, key.domain.curve(), key.oid, Role.CVCA,
                    cvca.body.chat)


def effective_chat(issuer: CHAT, subject: CHAT) -> CHAT:
    """TR-03110-3 C.4: the effective authorization is the bitwise AND of the relative
    authorizations along the chain. Templates of different terminal types do not combine:
    such a chain grants nothing."""
    if issuer.oid != subject.oid or len(issuer.template) != len(subject.template):
        return CHAT(subject.oid, bytes(len(subject.template)))
    return CHAT(subject.oid, bytes(a & b for a, b in zip(issuer.template, subject.template,
                                                         strict=True)))


def comp(point: bytes) -> bytes:
    """TR-03110-3 A.2.2.3: Comp of an ECDH public key is its x coordinate."""
    if len(point) < 3 or point[0] != 4 or len(point) % 2 == 0:
        raise TAError(TAReason.MALFORMED_KEY, "not an uncompressed point")
    return point[1 : 1 + (len(point) - 1) // 2]


def signature_input(id_picc: bytes, r_picc: bytes, comp_pk_pcd: bytes) -> bytes:
    """TR-03110-1 §2.4 (TA v1): the terminal signs ID_PICC ‖ r_PICC ‖ Comp(PK_PCD)."""
    return id_picc + r_picc + comp_pk_pcd


def id_picc_bac(document_number: str) -> bytes:
    """ID_PICC after BAC: the MRZ document number with its check digit (TR-03110-1 §2.4)."""
    number = document_number.strip().upper().ljust(9, "<")
    return (number + check_digit(number)).encode("ascii")


class TAChip:
    """The chip's side of TA v1: MSE:Set DST, PSO:Verify Certificate, MSE:Set AT,
    GET CHALLENGE, EXTERNAL AUTHENTICATE — decisions only, no APDU framing."""

    def __init__(self, trust_point: ChainKey, today: date) -> None:
        self.trust_point = trust_point
        self.current_date = today
        self._keys: dict[str, ChainKey] = {}  # temporary keys verified in this session
        self._issuer: ChainKey | None = None
        self._terminal: ChainKey | None = None
        self._selected: ChainKey | None = None
        self._challenge: bytes | None = None

    def _lookup(self, reference: str) -> ChainKey:
        if reference == str(self.trust_point.reference):
            return self.trust_point
        if reference in self._keys:
            return self._keys[reference]
        raise TAError(TAReason.UNKNOWN_REFERENCE, f"no key {reference}")

    def set_dst(self, car: str) -> None:
        """MSE:Set DST: select the key that will verify the next certificate."""
        self._issuer = None
        self._issuer = self._lookup(car)

    def verify_certificate(self, pso_data: bytes) -> ChainKey:
        """PSO:Verify Certificate of body ‖ 5F37; returns the key it makes trusted."""
        issuer, self._issuer = self._issuer, None  # one certificate per MSE:Set DST
        if issuer is None:
            raise TAError(TAReason.NO_ISSUER_SELECTED)
        cert = _parse(pso_data)
        if cert.body.car != issuer.reference:
            raise TAError(TAReason.CAR_MISMATCH, f"{cert.body.car} is not {issuer.reference}")
        _check_role(issuer, cert)
        key = _checked_key(issuer, cert)
        self._check_validity(cert)
        self._advance_date(issuer, cert)
        return self._import(key)

    def _check_validity(self, cert: CVCertificate) -> None:
        # TR-03110-3 §2.5 (certificate validation): an expired CVCA (link) certificate is still
        # accepted, so that a chip whose date lags follows the CVCA's key rollover; an expired
        # DV or terminal certificate is refused.
        if cert.body.chat.role is not Role.CVCA and cert.body.expiry < self.current_date:
            raise TAError(TAReason.EXPIRED, f"{cert.body.chr} expired {cert.body.expiry}")

    def _advance_date(self, issuer: ChainKey, cert: CVCertificate) -> None:
        # TR-03110-3 §2.5 (the chip's current date): it moves only to the effective date of a
        # CVCA, a domestic DV or a terminal certificate issued by a domestic DV; never back.
        role = cert.body.chat.role
        trusted = role in (Role.CVCA, Role.DV_DOMESTIC) or (
            role is Role.TERMINAL and issuer.role is Role.DV_DOMESTIC)
        if trusted and cert.body.effective > self.current_date:
            self.current_date = cert.body.effective

    def _import(self, key: ChainKey) -> ChainKey:
        if key.role is Role.CVCA:  # TR-03110-3 §2.5: a CVCA link certificate is the new trust point
            self.trust_point = key
            self._keys.clear()
            self._terminal = None
        else:
            self._keys[str(key.reference)] = key
        if key.role is Role.TERMINAL:
            self._terminal = key
        return key

    def set_at(self, chr_: str) -> None:
        """MSE:Set AT: name the terminal key that will sign (its CHR)."""
        self._selected = None
        if self._terminal is None or str(self._terminal.reference) != chr_:
            raise TAError(TAReason.UNKNOWN_REFERENCE, f"no verified terminal {chr_}")
        self._selected = self._terminal

    def get_challenge(self, rng: RNG) -> bytes:
        """GET CHALLENGE: a fresh r_PICC, good for one EXTERNAL AUTHENTICATE."""
        self._challenge = rng(CHALLENGE)
        return self._challenge

    def external_authenticate(self, signature: bytes, id_picc: bytes,
                              comp_pk_pcd: bytes) -> ChainKey:
        """Verify the terminal's signature; returns the authenticated terminal's key."""
        challenge, self._challenge = self._challenge, None
        terminal = self._selected
        if challenge is None or terminal is None:
            raise TAError(TAReason.NO_CHALLENGE)
        message = signature_input(id_picc, challenge, comp_pk_pcd)
        try:
            verify_plain(terminal.point, terminal.curve, terminal.algorithm, message, signature)
        except (SignatureError, CVCError) as exc:
            raise TAError(TAReason.BAD_TERMINAL_SIGNATURE, str(exc)) from exc
        return terminal


def _parse(pso_data: bytes) -> CVCertificate:
    try:
        return CVCertificate.from_pso_data(pso_data)
    except CVCError as exc:
        raise TAError(TAReason.MALFORMED_CERTIFICATE, str(exc)) from exc


def _check_role(issuer: ChainKey, cert: CVCertificate) -> None:
    role = cert.body.chat.role
    if role not in _ISSUES[issuer.role]:
        raise TAError(TAReason.WRONG_ROLE, f"{issuer.role.name} cannot issue {role.name}")


def _checked_key(issuer: ChainKey, cert: CVCertificate) -> ChainKey:
    """Verify the signature with the issuer's key and algorithm, then the subject's key."""
    try:
        verify_plain(issuer.point, issuer.curve, issuer.algorithm, cert.body.encode(),
                     cert.signature)
    except (SignatureError, CVCError) as exc:
        raise TAError(TAReason.BAD_CERTIFICATE_SIGNATURE, str(exc)) from exc
    key = cert.body.public_key
    return ChainKey(cert.body.chr, key.point, _subject_curve(issuer, cert), key.oid,
                    cert.body.chat.role, effective_chat(issuer.chat, cert.body.chat), issuer.role)


def _subject_curve(issuer: ChainKey, cert: CVCertificate) -> Curve:
    """TR-03110-3 D.3.3: a key without domain parameters is on its issuer's curve; its point
    must lie on that curve and its algorithm be id-TA-ECDSA-SHA-*."""
    key = cert.body.public_key
    try:
        curve = key.domain.curve() if key.domain is not None else issuer.curve
        public_key(curve, key.point)
        hash_for(key.oid)
    except (SignatureError, CVCError) as exc:
        raise TAError(TAReason.MALFORMED_KEY, str(exc)) from exc
    return curve


def _send(transport: Transport, command: CommandAPDU, step: str) -> bytes:
    response: ResponseAPDU = transport.transmit(command)
    if response.sw != SW.OK:
        raise TAError(TAReason.CARD_REFUSED, "", response.sw, step)
    return response.data


def perform_ta(transport: Transport, chain: Sequence[CVCertificate], signer: Signer,
               id_picc: bytes, comp_pk_pcd: bytes) -> None:
    """Terminal side of TA v1 (TR-03110-3 B.11): ``chain`` runs from the chip's trust point
    down (link certificates, DV, terminal); ``signer`` holds the terminal's private key."""
    if not chain:
        raise TAError(TAReason.NO_ISSUER_SELECTED, "empty certificate chain")
    for cert in chain:
        car, chr_ = cert.body.car, cert.body.chr
        _send(transport, CommandAPDU(0x00, 0x22, 0x81, 0xB6, tlv.encode(0x83, car.encode())),
              f"MSE:Set DST {car}")
        _send(transport, CommandAPDU(0x00, 0x2A, 0x00, 0xBE, cert.pso_data()),
              f"PSO:Verify Certificate {chr_}")
    terminal = chain[-1].body.chr
    _send(transport, CommandAPDU(0x00, 0x22, 0x81, 0xA4, tlv.encode(0x83, terminal.encode())),
          f"MSE:Set AT {terminal}")
    r_picc = _send(transport, CommandAPDU(0x00, 0x84, 0x00, 0x00, ne=CHALLENGE), "GET CHALLENGE")
    if len(r_picc) != CHALLENGE:
        raise TAError(TAReason.BAD_CHALLENGE, f"{len(r_picc)} bytes", None, "GET CHALLENGE")
    signature = signer(signature_input(id_picc, r_picc, comp_pk_pcd))
    _send(transport, CommandAPDU(0x00, 0x82, 0x00, 0x00, signature), "EXTERNAL AUTHENTICATE")
