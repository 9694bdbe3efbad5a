"""Chip Authentication v1 with ECDH and AES (ICAO 9303-11 §6.2; BSI TR-03110-1 §3.4 /
TR-03110-3 B.1): the terminal sends an ephemeral public key, both sides agree K and restart
secure messaging under KS_enc = KDF(K, 1), KS_mac = KDF(K, 2) with SSC 0.

The answer to GENERAL AUTHENTICATE still travels under the old session; there is no explicit
confirmation — the first command under the new keys is the proof (ICAO 9303-11 §6.2.3).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from applets.emrtd import crypto, eac_oids
from applets.emrtd.crypto import SMCipher
from applets.emrtd.lds import asn1
from applets.emrtd.sm import SecureMessaging
from applets.errors import CardError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from common.curves import Curve

# ICAO 9303-11 §9.2.5 / TR-03110-3 A.1.1.2: the AES variants of id-CA-ECDH (3DES uses
# MSE:Set KAT, not this sequence).
SUITES: dict[str, SMCipher] = {
    eac_oids.ID_CA_ECDH_AES_CBC_CMAC_128: SMCipher.AES128,
    eac_oids.ID_CA_ECDH_AES_CBC_CMAC_192: SMCipher.AES192,
    eac_oids.ID_CA_ECDH_AES_CBC_CMAC_256: SMCipher.AES256,
}


class CAError(CardError):
    """Chip Authentication failed: refused by the card (``sw``), or a key is unusable."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        self.sw = sw
        super().__init__(message)


def suite_of(oid: str) -> SMCipher:
    """The secure-messaging cipher a CA protocol OID selects."""
    if oid not in SUITES:
        raise CAError(f"{oid} is not id-CA-ECDH with AES")
    return SUITES[oid]


def load_point(curve: Curve, point: bytes) -> ec.EllipticCurvePublicKey:
    """An uncompressed point as a public key; points off the curve are refused
    (TR-03110-1 §3.4: the chip checks the terminal's ephemeral key)."""
    if len(point) != 1 + 2 * curve.size or point[0] != 4:
        raise CAError(f"public key of {len(point)} bytes is not an uncompressed "
                      f"{curve.label} point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve.crypto_curve(), point)
    except ValueError as exc:
        raise CAError(f"public key is not a point on {curve.label}") from exc


def encoded_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """04 ‖ x ‖ y, each coordinate padded to the field size."""
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def shared_secret(private: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey) -> bytes:
    """K = x coordinate of the ECDH point, left-padded to the field size (TR-03111 §4.3.1)."""
    return private.exchange(ec.ECDH(), peer)  # cryptography pads x to the field size


def session(secret: bytes, oid: str = eac_oids.ID_CA_ECDH_AES_CBC_CMAC_128) -> SecureMessaging:
    """ICAO 9303-11 §9.7.1: KS_enc = KDF(K, 1), KS_mac = KDF(K, 2); §6.2.3: SSC restarts at 0."""
    suite = suite_of(oid)
    return SecureMessaging(crypto.kdf(secret, 1, suite), crypto.kdf(secret, 2, suite), 0, suite)


def mse_set_at(oid: str, key_id: int | None = None) -> CommandAPDU:
    """MSE:Set AT for CA (TR-03110-3 B.11.1): 80 protocol OID value, 84 key id if several."""
    data = tlv.encode(0x80, asn1.oid(oid)[2:])
    if key_id is not None:
        data += tlv.encode(0x84, key_id.to_bytes(max(1, (key_id.bit_length() + 7) // 8), "big"))
    return CommandAPDU(0x00, 0x22, 0x41, 0xA4, data)


def general_authenticate(point: bytes) -> CommandAPDU:
    """GENERAL AUTHENTICATE with 7C { 80 ephemeral public key } (TR-03110-3 B.11.2)."""
    return CommandAPDU(0x00, 0x86, 0x00, 0x00, tlv.encode(0x7C, tlv.encode(0x80, point)), ne=256)


def perform_ca(transport: Transport, chip_point: bytes, curve: Curve,
               ephemeral: ec.EllipticCurvePrivateKey,
               oid: str = eac_oids.ID_CA_ECDH_AES_CBC_CMAC_128,
               key_id: int | None = None) -> SecureMessaging:
    """Terminal side: ``transport`` is the current (BAC/PACE) session; returns the new one.

    ``chip_point`` is the DG14 key (trusted only after passive authentication) and
    ``ephemeral`` the terminal's fresh key on the same curve, passed in so the caller can
    also use Comp(its public key) in Terminal Authentication.
    """
    suite_of(oid)
    secret = shared_secret(ephemeral, load_point(curve, chip_point))
    _expect_ok(transport.transmit(mse_set_at(oid, key_id)).sw, "MSE:Set AT")
    answer = transport.transmit(general_authenticate(encoded_point(ephemeral.public_key())))
    _expect_ok(answer.sw, "GENERAL AUTHENTICATE")
    _check_dynamic_data(answer.data)
    return session(secret, oid)


def chip_session(private_value: int, terminal_point: bytes, curve: Curve,
                 oid: str = eac_oids.ID_CA_ECDH_AES_CBC_CMAC_128) -> SecureMessaging:
    """Chip side: its static CA private key and the terminal's ephemeral key → new session."""
    if not 0 < private_value < curve.n:
        raise CAError(f"private key out of range for {curve.label}")
    private = ec.derive_private_key(private_value, curve.crypto_curve())
    return session(shared_secret(private, load_point(curve, terminal_point)), oid)


def _expect_ok(sw: int, step: str) -> None:
    if sw != SW.OK:
        raise CAError(f"Chip Authentication {step} refused with SW {sw:04X}", sw)


def _check_dynamic_data(data: bytes) -> None:
    # ICAO 9303-11 §6.2.3: the chip answers an empty 7C template, or nothing at all
    if not data:
        return
    try:
        tlv.decode_single(data, 0x7C)
    except TLVError as exc:
        raise CAError(f"GENERAL AUTHENTICATE answered malformed data: {exc}") from exc
