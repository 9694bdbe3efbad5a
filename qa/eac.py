"""EAC at QA: how the chip is opened (PACE with the CAN or the MRZ, BAC where allowed), the
inspection system's credentials, and each EAC step's failure as its own finding.

The protocol steps are :mod:`applets.emrtd.eac_reader`'s; this module decides what QA makes of
them. ICAO 9303-11 §4.4 (PACE), §6.2 (Chip Authentication), §7.1 and BSI TR-03110-1 §2.4
(Terminal Authentication, then DG3). DG14's key is trusted only after passive authentication
(9303-11 §6.2: the key comes from a data group the SOD signs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from applets.emrtd import cvc
from applets.emrtd.eac_reader import (
    EACReadError,
    EACReason,
    PACEAccess,
    TerminalCredentials,
)
from applets.emrtd.lds.dg14 import decode_dg14
from applets.emrtd.lds.files import DG3
from applets.emrtd.lds.sod import SOD
from applets.errors import CardError, StatusWordError
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from applets.transport.pcsc import ReaderError
from qa import readback
from qa.errors import AccessKeyError, QAError
from qa.readback import DocumentKeys, ReadPlan
from qa.reasons import Finding, Reason

CAN_DIGITS = 6  # ICAO 9303-11 §9.7.3: the CAN printed on (or derived for) the card

EAC_REASONS: dict[EACReason, Reason] = {
    EACReason.CARD_ACCESS_UNREADABLE: Reason.CARD_ACCESS_UNREADABLE,
    EACReason.PACE_REFUSED: Reason.PACE_REFUSED,
    EACReason.BAC_REFUSED: Reason.BAC_REFUSED,
    EACReason.READ_FAILED: Reason.READ_FAILED,
    EACReason.CA_FAILED: Reason.CA_FAILED,
    EACReason.TA_REFUSED: Reason.TA_REFUSED,
    EACReason.DG3_UNREADABLE: Reason.DG3_UNREADABLE,
}


def check_can(can: str) -> str:
    """A typed CAN, checked: six ASCII digits (the value is never put in the message)."""
    if len(can) != CAN_DIGITS or not (can.isascii() and can.isdecimal()):
        raise AccessKeyError("CAN", f"must be {CAN_DIGITS} digits")
    return can


class Password(StrEnum):
    """The PACE password QA opens the chip with (ICAO 9303-11 §9.7.3)."""

    CAN = "CAN"
    MRZ = "MRZ"


@dataclass(frozen=True, slots=True)
class EACAccess:
    """How QA opens an EAC chip: the PACE password, the CAN when that is the password,
    whether BAC may be used when the chip offers no PACE, and the inspection system (its CV
    chain from the chip's trust point down, and its signer) for Terminal Authentication."""

    password: Password
    terminal: TerminalCredentials = field(repr=False)
    can: str | None = field(default=None, repr=False)
    allow_bac: bool = False

    def __post_init__(self) -> None:
        if self.password is Password.CAN:
            check_can(self.can or "")
        elif self.can is not None:
            raise AccessKeyError("CAN", "given, but the MRZ is the PACE password")

    @classmethod
    def by_can(cls, can: str, terminal: TerminalCredentials, *,
               allow_bac: bool = False) -> EACAccess:
        """PACE with the card access number."""
        return cls(Password.CAN, terminal, can.strip(), allow_bac)

    @classmethod
    def by_mrz(cls, terminal: TerminalCredentials, *, allow_bac: bool = False) -> EACAccess:
        """PACE with the MRZ password (the document keys given to QA)."""
        return cls(Password.MRZ, terminal, None, allow_bac)

    def pace(self, keys: DocumentKeys | None) -> PACEAccess:
        """The PACE access of this password."""
        if self.password is Password.CAN and self.can is not None:
            return PACEAccess.can(self.can)
        if keys is None:
            raise QAError("PACE with the MRZ needs the document keys")
        return PACEAccess.mrz(keys.document_number, keys.date_of_birth, keys.date_of_expiry)


def terminal_credentials(chain: Sequence[bytes], signer: cvc.Signer) -> TerminalCredentials:
    """An inspection system from DER CV certificates (CVCA first, as exported) and its signer.

    The chip holds its trust point already (TR-03110-3 §2.5): a self-signed CVCA certificate
    at the head of the chain is not sent; link certificates, the DV and the IS are.
    """
    try:
        certificates = [cvc.CVCertificate.decode(der) for der in chain]
    except CardError as exc:
        raise QAError(f"inspection system chain: {exc}") from exc
    while certificates and certificates[0].body.car == certificates[0].body.chr:
        certificates.pop(0)
    if not certificates:
        raise QAError("inspection system chain holds no DV and IS certificate")
    return TerminalCredentials(tuple(certificates), signer)


def finding_for(exc: EACReadError) -> Finding:
    """An EAC step's failure as its finding (a status word, or the step's own detail)."""
    if isinstance(exc.__cause__, ReaderError):
        raise exc.__cause__  # the reader went away: operational, not the card's verdict
    detail = f"SW {exc.sw:04X}" if exc.sw is not None else exc.detail[:200]
    return Finding(EAC_REASONS[exc.reason], detail)


def has_ca_key(dg14: bytes | None) -> bool:
    """True when DG14 decodes and holds a Chip Authentication public key."""
    if dg14 is None:
        return False
    try:
        return bool(decode_dg14(dg14).ca_public_keys)
    except CardError:
        return False


def read_dg3(transport: Transport, plan: ReadPlan, max_bytes: int) -> bytes | Finding:
    """DG3 after Terminal Authentication; ``dg3_unreadable`` with the chip's status word when
    refused (6982: no DG3 right), ``dg_missing`` when absent."""
    try:
        return readback.read_ef(transport, DG3.fid, plan, max_bytes)
    except ReaderError:
        raise
    except StatusWordError as exc:
        if exc.sw == SW.FILE_NOT_FOUND:
            return Finding(Reason.DG_MISSING, "DG3")
        return Finding(Reason.DG3_UNREADABLE, f"SW {exc.sw:04X}")
    except CardError as exc:
        return Finding(readback.reason_for(exc), f"EF.DG3: {exc}"[:200])


def check_dg3_hash(sod: SOD, dg3: bytes) -> list[Finding]:
    """ICAO 9303-11 §5.1: DG3 hashes to the SOD's value (compared in constant time)."""
    signed = sod.dg_hashes.get(3)
    if signed is None:
        return [Finding(Reason.DG_UNSIGNED, "DG3")]
    if not hmac.compare_digest(hashlib.new(sod.hash_algorithm, dg3).digest(), signed):
        return [Finding(Reason.DG3_HASH_MISMATCH)]
    return []

