"""Errors of the eMRTD protocols: secure messaging, BAC, Active Authentication."""

from __future__ import annotations

from enum import Enum

from applets.errors import APDUError, CardError, StatusWordError


class SMCheck(Enum):
    """Which secure-messaging check failed (ICAO 9303-11 §9.8)."""

    MISSING_DO = "missing data object"  # the card answers 6987
    MALFORMED_DO = "malformed data object"  # 6988
    BAD_MAC = "MAC mismatch"  # 6988
    BAD_PADDING = "bad padding"  # 6988


class SMError(CardError):
    """Secure messaging failed; ``check`` says which rule was broken."""

    def __init__(self, check: SMCheck, detail: str = "", sw: int | None = None) -> None:
        self.check = check
        self.detail = detail
        self.sw = sw  # terminal side: the plain status word the card answered with, if any
        super().__init__(f"secure messaging: {check.value}" + (f" ({detail})" if detail else ""))


class CryptoError(CardError):
    """A primitive was given bytes it cannot work with (bad key length, bad padding)."""


class BACError(CardError):
    """Basic Access Control failed (card refused, or its cryptogram did not verify)."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        self.sw = sw  # the card's status word when the card refused, else None
        super().__init__(message)


class AccessDeniedError(StatusWordError):
    """The card answered 6982: access control (BAC) is needed first."""


class AAError(CardError):
    """Active Authentication failed: the signature does not verify for the challenge."""


class FileTooLargeError(CardError):
    """An elementary file's header declares more bytes than the reader accepts for that file."""

    def __init__(self, fid: int, declared: int, cap: int) -> None:
        self.fid = fid
        self.declared = declared
        self.cap = cap
        super().__init__(f"EF {fid:04X} declares {declared} bytes, more than the {cap} accepted")


class FileStructureError(APDUError):
    """An elementary file does not start with a TLV header, or ends before its declared length."""

    def __init__(self, fid: int, reason: str) -> None:
        self.fid = fid
        self.reason = reason
        super().__init__(f"EF {fid:04X} {reason}")
