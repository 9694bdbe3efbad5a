"""Active Authentication (ICAO 9303-11 §6.1): the chip proves it holds the DG15 private key.

A fresh random 8-byte RND.IFD per check (§6.1: never a BAC nonce), INTERNAL AUTHENTICATE
under secure messaging, verified with DG15's key: ECDSA plain r ‖ s (BSI TR-03111 §5.2.1)
with the hash DG14's ActiveAuthenticationInfo names (§6.1.2.3, §9.2.12), or RSA with
ISO/IEC 9796-2 scheme 1 (§6.1.2.2).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd.aa import CHALLENGE_LENGTH, verify_aa
from applets.emrtd.lds.dg14 import decode_dg14
from applets.emrtd.lds.dg15 import DG15PublicKey, decode_dg15
from applets.emrtd.reader import check_length
from applets.errors import CardError, LDSError, ResponseTooLongError
from applets.iso7816.apdu import CommandAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from applets.transport.pcsc import ReaderError
from qa.reasons import Finding, Reason

RNG = Callable[[int], bytes]
_BSI_ECDSA_PLAIN = "0.4.0.127.0.7.1.1.4.1."  # BSI TR-03111 §5.2.1 ecdsa-plain-signatures
# ICAO 9303-11 §6.1.2.3: SHA-224..512 for ECDSA; SHA-1 is read for older chips.
_ECDSA_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    _BSI_ECDSA_PLAIN + "1": hashes.SHA1, _BSI_ECDSA_PLAIN + "2": hashes.SHA224,
    _BSI_ECDSA_PLAIN + "3": hashes.SHA256, _BSI_ECDSA_PLAIN + "4": hashes.SHA384,
    _BSI_ECDSA_PLAIN + "5": hashes.SHA512,
}


def _ecdsa_hash(dg14: bytes | None) -> hashes.HashAlgorithm | Finding:
    """The hash DG14's ActiveAuthenticationInfo names (required for ECDSA, §9.2.12)."""
    if dg14 is None:
        return Finding(Reason.AA_FAILED, "ECDSA key but no DG14 naming the algorithm")
    try:
        oid = decode_dg14(dg14).aa_signature_algorithm
    except LDSError as exc:
        return Finding(Reason.DG_MALFORMED, f"DG14: {exc.reason}")
    if oid is None or oid not in _ECDSA_HASHES:
        return Finding(Reason.AA_FAILED, f"DG14 names no usable ECDSA algorithm ({oid})")
    return _ECDSA_HASHES[oid]()


def _key(dg15: bytes | None) -> DG15PublicKey | Finding:
    if dg15 is None:
        return Finding(Reason.AA_KEY_MISSING)
    try:
        return decode_dg15(dg15)
    except LDSError as exc:
        return Finding(Reason.DG_MALFORMED, f"DG15: {exc.reason}")


def internal_authenticate(transport: Transport, challenge: bytes) -> bytes | Finding:
    """INTERNAL AUTHENTICATE ``00 88 00 00 08 <RND.IFD> 00``; the signature or a finding."""
    command = CommandAPDU(0x00, 0x88, 0x00, 0x00, challenge, ne=256)
    try:
        response = check_length(command, transport.transmit(command), "INTERNAL AUTHENTICATE")
    except ReaderError:
        raise
    except ResponseTooLongError as exc:
        return Finding(Reason.RESPONSE_TOO_LONG, str(exc))
    except CardError as exc:
        return Finding(Reason.AA_FAILED, str(exc))
    if response.sw != SW.OK:
        return Finding(Reason.AA_FAILED, f"chip answered SW {response.sw:04X}")
    return response.data


def check_active_authentication(transport: Transport, dg15: bytes | None, dg14: bytes | None,
                                rng: RNG) -> list[Finding]:
    """Challenge the chip and verify its answer with the DG15 key."""
    key = _key(dg15)
    if isinstance(key, Finding):
        return [key]
    algorithm: hashes.HashAlgorithm | None = None
    if isinstance(key, ec.EllipticCurvePublicKey):
        chosen = _ecdsa_hash(dg14)
        if isinstance(chosen, Finding):
            return [chosen]
        algorithm = chosen
    challenge = rng(CHALLENGE_LENGTH)
    signature = internal_authenticate(transport, challenge)
    if isinstance(signature, Finding):
        return [signature]
    try:
        verify_aa(key, challenge, signature, algorithm)
    except CardError as exc:
        return [Finding(Reason.AA_FAILED, str(exc))]
    return []
