"""The chip's EAC personalization commands (cardline's profile; refused once locked).

PUT DATA ``00 DA 00 tag`` with the data object ``tag L value`` (the style of PUT DATA 62):

=========  ==========================================================================
tag        value
=========  ==========================================================================
``64``     PACE MRZ password K = SHA-1(MRZ information), 20 bytes (ICAO 9303-11 §9.7.3)
``65``     CAN: 4 to 12 decimal digits (ISO 8859-1)
``66``     access protocols, one byte: ``01`` BAC (the default), ``02`` PACE (BAC
           refused), ``03`` PACE and BAC
``67``     trust point: the CVCA's self-signed CV certificate ``7F21 …`` (TR-03110-3 §2.5)
``68``     the chip's current date: YYMMDD, one digit per byte as in a CV certificate
=========  ==========================================================================

GENERATE ASYMMETRIC KEY PAIR ``00 46 00 01 {06 curve OID} 00`` (ISO 7816-8; key reference
01) generates the Chip Authentication key on the chip and answers ``7F49 {06 curve OID,
86 uncompressed point}``; like the AA key (``00 46 00 00``) it is made once and never
replaced or read back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import ca, curves, cvc
from applets.emrtd.lds.asn1 import decode_oid, oid
from applets.emrtd.pace import random_scalar
from applets.emrtd.perso import (
    TAG_ACCESS,
    TAG_CAN,
    TAG_CHIP_DATE,
    TAG_PACE_MRZ,
    TAG_TRUST_POINT,
)
from applets.emrtd.ta import ChainKey, trust_point
from applets.errors import CardError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.virtual.memory import AccessProtocols, CAKey, ChipMemory
from common.curves import Curve

RNG = Callable[[int], bytes]
EAC_TAGS = frozenset({TAG_PACE_MRZ, TAG_CAN, TAG_ACCESS, TAG_TRUST_POINT, TAG_CHIP_DATE})
MRZ_KEY_BYTES = 20  # SHA-1
CAN_DIGITS = (4, 12)


class PersoDataError(CardError):
    """A PUT DATA value the chip will not store (answered 6A80)."""


def _can(value: bytes) -> str:
    text = value.decode("latin-1")
    if not CAN_DIGITS[0] <= len(text) <= CAN_DIGITS[1] or not text.isdigit():
        raise PersoDataError(f"a CAN is {CAN_DIGITS[0]}–{CAN_DIGITS[1]} decimal digits")
    return text


def _trust_point(value: bytes) -> ChainKey:
    cvca = cvc.CVCertificate.decode(value)
    key = trust_point(cvca)
    cvc.verify(cvca, key.point, key.curve)  # a CVCA certificate is self-signed
    return key


def _store(memory: ChipMemory, tag: int, value: bytes) -> int:
    """Store one value; the EEPROM bytes written."""
    if tag == TAG_PACE_MRZ:
        if len(value) != MRZ_KEY_BYTES:
            raise PersoDataError(f"K is {MRZ_KEY_BYTES} bytes")
        memory.pace_mrz = value
    elif tag == TAG_CAN:
        memory.pace_can = _can(value)
    elif tag == TAG_ACCESS:
        if len(value) != 1:
            raise PersoDataError("access protocols are one byte")
        memory.access = AccessProtocols.from_code(value[0])
    elif tag == TAG_TRUST_POINT:
        memory.trust_point = _trust_point(value)
    else:
        memory.chip_date = _chip_date(value)
    return len(value)


def _chip_date(value: bytes) -> date:
    return cvc.decode_date(value, "chip date")


def put_data(memory: ChipMemory, command: CommandAPDU) -> tuple[ResponseAPDU, int]:
    """PUT DATA of one EAC tag (P2): the answer and the EEPROM bytes written."""
    try:
        written = _store(memory, command.p2, tlv.decode_single(command.data, command.p2).value)
    except (CardError, ValueError):  # ValueError: an unknown access code
        return ResponseAPDU(b"", SW.WRONG_DATA), 0
    return ResponseAPDU(b"", SW.OK), written


def public_key_template(curve: Curve, point: bytes) -> bytes:
    """``7F49 {06 curve OID, 86 point}`` (ISO 7816-8 public key template)."""
    return tlv.encode(0x7F49, oid(curve.oid) + tlv.encode(0x86, point))


def generate_ca_key(memory: ChipMemory, command: CommandAPDU,
                    rng: RNG) -> tuple[ResponseAPDU, int]:
    """GENERATE ASYMMETRIC KEY PAIR for Chip Authentication; once per chip."""
    if memory.ca_key is not None:
        return ResponseAPDU(b"", SW.CONDITIONS_NOT_SATISFIED), 0
    try:
        curve = curves.by_oid(decode_oid(tlv.decode_single(command.data, 0x06).value,
                                         "curve"))
    except (CardError, KeyError):
        return ResponseAPDU(b"", SW.WRONG_DATA), 0
    scalar = random_scalar(curve, rng)  # SEC 1 §3.2.1: d uniform in [1, n − 1]
    memory.ca_key = CAKey(curve.oid, scalar.to_bytes(curve.size, "big"))
    public = ec.derive_private_key(scalar, curve.crypto_curve()).public_key()
    return ResponseAPDU(public_key_template(curve, ca.encoded_point(public)), SW.OK), curve.size
