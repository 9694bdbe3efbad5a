"""PACE v2 with Generic Mapping over ECDH (ICAO 9303-11 §4.4; BSI TR-03110-2 §3.2,
TR-03110-3 §A.3): the passwords, the math both ends share, and the terminal's sequencer over a
``transmit`` capability. Worked example: ICAO 9303-11 Appendix G.1.

The chip's end is :class:`applets.emrtd.pace_chip.PACEResponder`; both ends return a
:class:`PACEResult` carrying a fresh :class:`~applets.emrtd.sm.SecureMessaging` (SSC 0).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from applets.emrtd import bac, crypto, curves, eac_oids, ec, ecssl
from applets.emrtd.crypto import SMCipher
from applets.emrtd.errors import CryptoError
from applets.emrtd.lds.asn1 import oid as der_oid
from applets.emrtd.sm import SecureMessaging
from applets.errors import CardError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from common.curves import Curve

RNG = Callable[[int], bytes]
Transmit = Callable[[CommandAPDU], ResponseAPDU]
CHAINING = 0x10  # ISO 7816-4 §5.1.1: CLA bit 5, set on every GENERAL AUTHENTICATE but the last
PASSWORD_KEY_COUNTER = 3  # ICAO 9303-11 §9.7.1: KDF counter 3 derives Kπ


class PasswordType(IntEnum):
    """Password references of MSE:Set AT tag 83 (ICAO 9303-11 §4.4; TR-03110-3 App. B.1)."""

    MRZ = 1
    CAN = 2


class PACEStep(Enum):
    """The command of the protocol a failure belongs to."""

    SET_AT = "MSE:Set AT"
    NONCE = "GENERAL AUTHENTICATE 1 (encrypted nonce)"
    MAP = "GENERAL AUTHENTICATE 2 (map nonce)"
    AGREE = "GENERAL AUTHENTICATE 3 (key agreement)"
    TOKENS = "GENERAL AUTHENTICATE 4 (mutual authentication)"


class PACECheck(Enum):
    """Which rule of PACE failed."""

    REFUSED = "card refused"
    MALFORMED = "malformed data"
    BAD_POINT = "invalid public point"
    SAME_KEY = "ephemeral public keys are equal"
    BAD_TOKEN = "authentication token mismatch"  # noqa: S105 - an error code, not a secret
    UNSUPPORTED = "unsupported protocol or parameters"
    BAD_PASSWORD = "malformed password"  # noqa: S105 - an error code, not a secret


class PACEError(CardError):
    """PACE failed: ``check`` says which rule, ``step`` which command, ``sw`` the card's answer."""

    def __init__(self, check: PACECheck, step: PACEStep | None = None, detail: str = "",
                 sw: int | None = None) -> None:
        self.check, self.step, self.detail, self.sw = check, step, detail, sw
        where = f"{step.value}: " if step else ""
        status = f" (SW {sw:04X})" if sw is not None else ""
        super().__init__(f"PACE {where}{check.value}{status}" + (f": {detail}" if detail else ""))


@dataclass(frozen=True, slots=True)
class Password:
    """A PACE password: its reference and K (SHA-1 of the MRZ information, or the CAN bytes)."""

    kind: PasswordType
    secret: bytes = field(repr=False)


def mrz_password(document_number: str, date_of_birth: str, date_of_expiry: str) -> Password:
    """ICAO 9303-11 §9.7.3: K = SHA-1(docNo ‖ cd ‖ DOB ‖ cd ‖ DOE ‖ cd), docNo padded to 9."""
    info = bac.mrz_information(document_number, date_of_birth, date_of_expiry)
    digest = hashlib.sha1(info.encode("ascii")).digest()  # noqa: S324 - mandated by §9.7.3
    return Password(PasswordType.MRZ, digest)


def can_password(can: str) -> Password:
    """ICAO 9303-11 §9.7.3: the CAN's digits as ISO 8859-1 bytes, unhashed."""
    if not can or not all("0" <= c <= "9" for c in can):
        raise PACEError(PACECheck.BAD_PASSWORD, detail="a CAN is a string of decimal digits")
    return Password(PasswordType.CAN, can.encode("latin-1"))


_CIPHERS: dict[str, SMCipher] = {
    eac_oids.ID_PACE_ECDH_GM_3DES_CBC_CBC: SMCipher.DES3,
    eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_128: SMCipher.AES128,
    eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_192: SMCipher.AES192,
    eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_256: SMCipher.AES256,
}


@dataclass(frozen=True, slots=True)
class PACEParameters:
    """One PACEInfo's choice: protocol OID (ECDH-GM only) and standardized domain parameter id."""

    oid: str
    parameter_id: int

    def __post_init__(self) -> None:
        if self.oid not in _CIPHERS:
            raise PACEError(PACECheck.UNSUPPORTED, detail=f"protocol {self.oid}")
        try:
            curves.by_pace_parameter_id(self.parameter_id)
        except KeyError as exc:
            raise PACEError(PACECheck.UNSUPPORTED, detail=str(exc)) from exc

    @property
    def cipher(self) -> SMCipher:
        """The cipher suite the OID names (TR-03110-3 App. A.1)."""
        return _CIPHERS[self.oid]

    @property
    def curve(self) -> Curve:
        """The curve the parameter id names (TR-03110-3 Table 4)."""
        return curves.by_pace_parameter_id(self.parameter_id)

    @property
    def oid_value(self) -> bytes:
        """The OID's DER contents, as MSE:Set AT tag 80 carries them."""
        return tlv.decode_single(der_oid(self.oid)).value


@dataclass(frozen=True, slots=True, eq=False)
class PACEResult:
    """What PACE leaves behind on either end: the SM session and both ephemeral public keys."""

    session: SecureMessaging
    parameters: PACEParameters
    password_type: PasswordType
    chip_public_key: bytes  # PK_DH,IC, uncompressed
    terminal_public_key: bytes  # PK_DH,IFD, uncompressed

    @property
    def id_picc(self) -> bytes:
        """ID_PICC = Comp(PK_DH,IC), the x-coordinate for ECDH, which Terminal Authentication
        signs after PACE (TR-03110-2)."""
        return self.chip_public_key[1 : 1 + self.parameters.curve.size]


def password_key(password: Password, cipher: SMCipher) -> bytes:
    """ICAO 9303-11 §9.7.1: Kπ = KDF(K, 3) for the suite's cipher."""
    return crypto.kdf(password.secret, PASSWORD_KEY_COUNTER, cipher)


def encrypt_nonce(k_pi: bytes, nonce: bytes, cipher: SMCipher) -> bytes:
    """ICAO 9303-11 §4.4.3.1: z = E(Kπ, s), CBC with IV 0 (3DES or AES)."""
    if cipher is SMCipher.DES3:
        return crypto.des3_encrypt(k_pi, nonce)
    return crypto.aes_encrypt(k_pi, nonce)


def decrypt_nonce(k_pi: bytes, encrypted: bytes, cipher: SMCipher) -> bytes:
    """s = D(Kπ, z); raises when z is empty or not block-aligned."""
    if not encrypted:
        raise PACEError(PACECheck.MALFORMED, PACEStep.NONCE, "empty encrypted nonce")
    try:
        if cipher is SMCipher.DES3:
            return crypto.des3_decrypt(k_pi, encrypted)
        return crypto.aes_decrypt(k_pi, encrypted)
    except CryptoError as exc:
        raise PACEError(PACECheck.MALFORMED, PACEStep.NONCE, str(exc)) from exc


def random_scalar(curve: Curve, rng: RNG) -> int:
    """A private key in [1, n−1] by rejection sampling over ``rng`` (SEC 1 §3.2.1)."""
    size = (curve.n.bit_length() + 7) // 8
    for _ in range(64):
        scalar = int.from_bytes(rng(size), "big")
        if 0 < scalar < curve.n:
            return scalar
    raise CryptoError("random source gave no scalar in [1, n-1] after 64 draws")


def _finite(step: PACEStep, point: ec.Point | None, what: str) -> ec.Point:
    if point is None:
        raise PACEError(PACECheck.BAD_POINT, step, f"{what} is the point at infinity")
    return point


# k·P as the side computes it: the chip (ours is virtual) in pure Python, the terminal through
# OpenSSL where that is faster (applets.emrtd.ecssl: P-256); the points are the same.
Multiply = Callable[[Curve, int, ec.Point | None], ec.Point | None]


def public_key(curve: Curve, scalar: int, base: ec.Point, step: PACEStep,
               mul: Multiply = ec.multiply) -> ec.Point:
    """scalar·base, refusing the point at infinity."""
    return _finite(step, mul(curve, scalar, base), "public key")


def map_generator(curve: Curve, nonce: bytes, shared: ec.Point,
                  mul: Multiply = ec.multiply) -> ec.Point:
    """ICAO 9303-11 §4.4.3.3.1: G' = s·G + H."""
    s_g = mul(curve, int.from_bytes(nonce, "big"), ec.generator(curve))
    return _finite(PACEStep.MAP, ec.add(curve, s_g, shared), "mapped generator")


def mapped_generator(curve: Curve, own_key: int, peer: ec.Point, nonce: bytes,
                     mul: Multiply = ec.multiply) -> ec.Point:
    """Generic mapping from one side's view: H = SK_map · PK_map(other), then G' = s·G + H."""
    shared = _finite(PACEStep.MAP, mul(curve, own_key, peer), "H")
    return map_generator(curve, nonce, shared, mul)


def session_keys(curve: Curve, own_key: int, peer: ec.Point, cipher: SMCipher,
                 mul: Multiply = ec.multiply) -> tuple[bytes, bytes]:
    """ICAO 9303-11 §9.7.1: K = x(SK · PK(other)); KSenc = KDF(K, 1), KSmac = KDF(K, 2)."""
    shared = _finite(PACEStep.AGREE, mul(curve, own_key, peer), "shared secret")
    return keys_from_secret(ec.x_coordinate(curve, shared), cipher)  # x padded to field size


def keys_from_secret(secret: bytes, cipher: SMCipher) -> tuple[bytes, bytes]:
    """KSenc = KDF(K, 1), KSmac = KDF(K, 2) (not parity-adjusted for 3DES, §9.7.1.1)."""
    return crypto.kdf(secret, 1, cipher), crypto.kdf(secret, 2, cipher)


def public_key_data(parameters: PACEParameters, public: bytes) -> bytes:
    """TR-03110-3 App. D.3: the public key data object 7F49 {06 OID, 86 uncompressed point}."""
    return tlv.encode(0x7F49, der_oid(parameters.oid) + tlv.encode(0x86, public))


def auth_token(ks_mac: bytes, parameters: PACEParameters, public: bytes) -> bytes:
    """ICAO 9303-11 §4.4.3.4: MAC(KSmac, 7F49 {06 OID, 86 point}) of the other side's key."""
    data = public_key_data(parameters, public)
    if parameters.cipher is SMCipher.DES3:
        return crypto.retail_mac(ks_mac, crypto.pad(data))
    return crypto.aes_cmac(ks_mac, data)  # CMAC cut to 8 bytes


def dynamic_data(step: PACEStep, data: bytes, tag: int | None) -> bytes:
    """The value of ``tag`` inside 7C (TR-03110-3 App. B.1); ``None``: 7C must be empty.

    Other objects next to ``tag`` are skipped: EAC2 chips add CARs (87, 88) to the last answer.
    """
    try:
        inner = tlv.decode_all(tlv.decode_single(data, 0x7C).value)
    except TLVError as exc:
        raise PACEError(PACECheck.MALFORMED, step, str(exc)) from exc
    if tag is None and not inner:
        return b""
    found = [obj.value for obj in inner if obj.tag == tag]
    if not found:
        raise PACEError(PACECheck.MALFORMED, step, f"7C without tag {tag or 0:02X}")
    return found[0]


def decode_public(step: PACEStep, curve: Curve, data: bytes) -> ec.Point:
    """A peer's public point, or :class:`PACEError` when it is malformed or off the curve."""
    try:
        return ec.decode_point(curve, data)
    except ec.PointError as exc:
        raise PACEError(PACECheck.BAD_POINT, step, str(exc)) from exc


def mse_set_at(parameters: PACEParameters, kind: PasswordType, send_parameter_id: bool) -> (
        CommandAPDU):
    """ICAO 9303-11 §4.4, MSE:Set AT: 00 22 C1 A4 {80 OID, 83 password ref, [84 parameter id]}."""
    data = tlv.encode(0x80, parameters.oid_value) + tlv.encode(0x83, bytes((kind,)))
    if send_parameter_id:
        data += tlv.encode(0x84, parameters.parameter_id.to_bytes(1, "big"))
    return CommandAPDU(0x00, 0x22, 0xC1, 0xA4, data)


def general_authenticate(inner: bytes, last: bool) -> CommandAPDU:
    """ICAO 9303-11 §4.4, GENERAL AUTHENTICATE: x0 86 00 00 {7C inner} Le 00, chained (CLA 10)
    unless ``last``."""
    return CommandAPDU(0x00 if last else CHAINING, 0x86, 0x00, 0x00, tlv.encode(0x7C, inner),
                       ne=256)


def establish(transmit: Transmit, password: Password, *, oid: str, parameter_id: int,
              rng: RNG = secrets.token_bytes, send_parameter_id: bool = True) -> PACEResult:
    """Terminal side of PACE-GM-ECDH; raises :class:`PACEError` naming the failed step."""
    run = _Terminal(transmit, PACEParameters(oid, parameter_id), rng)
    run.send(PACEStep.SET_AT, mse_set_at(run.parameters, password.kind, send_parameter_id))
    cipher = run.parameters.cipher
    nonce = decrypt_nonce(password_key(password, cipher), run.exchange(PACEStep.NONCE, b"", 0x80),
                          cipher)
    own, chip = run.agree(run.map(nonce))
    return PACEResult(run.authenticate(own, chip), run.parameters, password.kind, chip, own)


class _Terminal:
    """The terminal's state between the GENERAL AUTHENTICATE steps of one run."""

    def __init__(self, transmit: Transmit, parameters: PACEParameters, rng: RNG) -> None:
        self.transmit, self.parameters, self.rng = transmit, parameters, rng
        self.curve = parameters.curve
        self.keys = (b"", b"")

    def send(self, step: PACEStep, command: CommandAPDU) -> bytes:
        response = self.transmit(command)
        if response.sw != SW.OK:
            raise PACEError(PACECheck.REFUSED, step, sw=response.sw)
        return response.data

    def exchange(self, step: PACEStep, inner: bytes, answer_tag: int) -> bytes:
        last = step is PACEStep.TOKENS
        return dynamic_data(step, self.send(step, general_authenticate(inner, last)), answer_tag)

    def map(self, nonce: bytes) -> ec.Point:
        key = random_scalar(self.curve, self.rng)
        own = public_key(self.curve, key, ec.generator(self.curve), PACEStep.MAP, ecssl.multiply)
        answer = self.exchange(PACEStep.MAP, tlv.encode(0x81, ec.encode_point(self.curve, own)),
                               0x82)
        return mapped_generator(self.curve, key, decode_public(PACEStep.MAP, self.curve, answer),
                                nonce, ecssl.multiply)

    def agree(self, generator: ec.Point) -> tuple[bytes, bytes]:
        key = random_scalar(self.curve, self.rng)
        own = ec.encode_point(self.curve, public_key(self.curve, key, generator, PACEStep.AGREE,
                                                     ecssl.multiply))
        chip = self.exchange(PACEStep.AGREE, tlv.encode(0x83, own), 0x84)
        point = decode_public(PACEStep.AGREE, self.curve, chip)
        if hmac.compare_digest(chip, own):  # TR-03110-2 PACE step 3: PK_DH,IC ≠ PK_DH,IFD
            raise PACEError(PACECheck.SAME_KEY, PACEStep.AGREE)
        self.keys = session_keys(self.curve, key, point, self.parameters.cipher, ecssl.multiply)
        return own, chip

    def authenticate(self, own: bytes, chip: bytes) -> SecureMessaging:
        ks_enc, ks_mac = self.keys
        token = auth_token(ks_mac, self.parameters, chip)
        answer = self.exchange(PACEStep.TOKENS, tlv.encode(0x85, token), 0x86)
        # ICAO 9303-11 §4.4.1 step 4: the chip's token T_IC is over the terminal's key
        if not hmac.compare_digest(answer, auth_token(ks_mac, self.parameters, own)):
            raise PACEError(PACECheck.BAD_TOKEN, PACEStep.TOKENS, "T_IC does not verify")
        return SecureMessaging(ks_enc, ks_mac, 0, self.parameters.cipher)
