"""Access and read-back: BAC with the document's keys, then every file over secure messaging.

Strict and chip-agnostic (it must read any ICAO 9303 BAC chip, not only ours): the chunk
size comes from the chip's ISO 7816-4 extended length information when it offers one
(extended Le under SM), else short Le blocks of 223 bytes; 6Cxx, 61xx, 6282 and the
odd-INS READ BINARY beyond offset 32767 are handled by :mod:`applets.emrtd.reader`.

Bounded, because the desk reads chips the factory did not make: every APDU first checks the
check's deadline, a response longer than its Le is refused, and each file's declared size is
capped (:data:`DEFAULT_MAX_FILE_BYTES`, overridable per file or as one cap).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from applets.emrtd import bac, reader
from applets.emrtd.errors import FileStructureError, SMError
from applets.emrtd.lds.files import DATA_GROUPS, EF_SOD, EFInfo
from applets.emrtd.lds.mrz import NO_EXPIRY, parse_td1
from applets.emrtd.perso import parse_length_info, select_applet_command
from applets.emrtd.sm import SM_CLA_BITS, SecureMessaging
from applets.errors import (
    APDUError,
    CardError,
    LDSError,
    MRZError,
    ResponseTooLongError,
    StatusWordError,
    TLVError,
)
from applets.iso7816.apdu import SHORT_MAX_LC, CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from applets.transport.pcsc import ReaderError
from qa.errors import AccessKeyError, QAError
from qa.reasons import Finding, Reason

RNG = Callable[[int], bytes]
Clock = Callable[[], float]
SM_RESPONSE_OVERHEAD = 64  # DO87 header + padding + DO99 + DO8E around an extended block
_LENGTH_INFO = CommandAPDU(0x00, 0xCA, 0x7F, 0x66, ne=256)  # ISO 7816-4 §12.7.1
_SM_ABORTED = (SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT)
_RETRY_SHORT = (SW.WRONG_LENGTH, SW.WRONG_P1P2)
# Per-file caps on the declared size (header included). Images (DG2 face, DG3 fingers, DG4
# irises, DG5/DG6 displayed portrait, DG7 displayed signature) get 64 KiB, over four times the
# CCCD profile's 15 000-byte DG2 budget; EF.SOD 16 KiB (a CMS SignedData with its certificate);
# every other LDS1 file a few KiB.
IMAGE_FILE_BYTES = 0x10000
SOD_FILE_BYTES = 0x4000
OTHER_FILE_BYTES = 0x2000
DEFAULT_MAX_FILE_BYTES: Mapping[str, int] = MappingProxyType({
    **{DATA_GROUPS[n].name: IMAGE_FILE_BYTES for n in (2, 3, 4, 5, 6, 7)},
    EF_SOD.name: SOD_FILE_BYTES,
})
FileCaps = Mapping[str, int] | int


@dataclass(frozen=True, slots=True)
class DocumentKeys:
    """The three MRZ fields BAC keys derive from (ICAO 9303-11 §9.7.2); never logged."""

    document_number: str = field(repr=False)
    date_of_birth: str = field(repr=False)
    date_of_expiry: str = field(repr=False)

    def mrz_information(self) -> str:
        """docNo ‖ cd ‖ DOB ‖ cd ‖ DOE ‖ cd."""
        return bac.mrz_information(self.document_number, self.date_of_birth, self.date_of_expiry)


def _yymmdd(name: str, value: str, allow_no_expiry: bool) -> str:
    if allow_no_expiry and value == NO_EXPIRY:
        return value
    if len(value) != 6 or not value.isdigit():
        raise AccessKeyError(name, "must be six digits YYMMDD")
    return value


def keys_from_fields(document_number: str, date_of_birth: str, date_of_expiry: str) -> DocumentKeys:
    """Keys typed at a QA desk; ``date_of_expiry`` may be ``<<<<<<`` for a card without expiry."""
    number = document_number.strip().upper()
    if not number or not all(c.isalnum() or c == "<" for c in number) or len(number) > 22:
        raise AccessKeyError("document number", "must be 1–22 characters A–Z, 0–9")
    return DocumentKeys(number, _yymmdd("date of birth", date_of_birth, False),
                        _yymmdd("date of expiry", date_of_expiry, True))


def normalize_mrz(text: str) -> str:
    """The 90 characters of a TD1 MRZ typed as one string or as three lines."""
    return "".join(text.split())


def keys_from_mrz(text: str) -> DocumentKeys:
    """Keys from a full TD1 MRZ, its check digits verified."""
    try:
        td1 = parse_td1(normalize_mrz(text))
    except MRZError as exc:
        raise AccessKeyError("MRZ", exc.reason) from exc
    return DocumentKeys(td1.document_number, td1.date_of_birth, td1.date_of_expiry)


def file_cap(caps: FileCaps | None, name: str) -> int:
    """The most bytes accepted for file ``name``: one cap for all, or the mapping's value for
    the file, falling back to :data:`DEFAULT_MAX_FILE_BYTES` and then :data:`OTHER_FILE_BYTES`."""
    if isinstance(caps, int):
        return caps
    given = caps.get(name) if caps is not None else None
    return given if given is not None else DEFAULT_MAX_FILE_BYTES.get(name, OTHER_FILE_BYTES)


class DeadlineError(QAError):
    """The check's deadline passed before the next APDU: the card fails with ``deadline``."""

    def __init__(self, apdus: int) -> None:
        self.apdus = apdus
        super().__init__(f"deadline passed after {apdus} APDUs")


class CountingTransport:
    """A :class:`Transport` that counts the APDUs crossing it (every retry included)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.count = 0

    @property
    def max_command_data(self) -> int:
        """The inner path's limit."""
        return self.inner.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Count and forward."""
        self.count += 1
        return self.inner.transmit(command)


class GuardedTransport(CountingTransport):
    """Counts, refuses to send once ``clock()`` has reached ``deadline`` (:class:`DeadlineError`),
    and refuses a plain response longer than its command's Le. A protected response is held to
    the Le in its command's DO97 (ICAO 9303-11 §9.8.5) once unwrapped, by the reader above SM."""

    def __init__(self, inner: Transport, deadline: float | None, clock: Clock) -> None:
        super().__init__(inner)
        self.deadline = deadline
        self.clock = clock

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Check the deadline, count, forward, check a plain response's length."""
        if self.deadline is not None and self.clock() >= self.deadline:
            raise DeadlineError(self.count)
        response = super().transmit(command)
        if command.cla & SM_CLA_BITS != SM_CLA_BITS:
            reader.check_length(command, response)
        return response


def reason_for(exc: Exception) -> Reason:
    """The reason code of a check cut short by ``exc``.

    Past the deadline: ``deadline``; more data than Le: ``response_too_long``; bytes that do
    not parse (a file that is not a TLV or is shorter than declared, an LDS or ASN.1 structure,
    an unknown algorithm OID surfacing as a library's KeyError): ``malformed``; a protected
    response whose MAC or data objects do not hold (ICAO 9303-11 §9.8.6): ``sm_failed``; any
    other chip or protocol refusal (status words, endless 61xx, an oversized file):
    ``read_failed``.
    """
    if isinstance(exc, DeadlineError):
        return Reason.DEADLINE
    if isinstance(exc, SMError) and (exc.sw is None or exc.sw in _SM_ABORTED):
        return Reason.SM_FAILED  # a plain 6987/6988: the chip found the SM error
    if isinstance(exc, ResponseTooLongError):
        return Reason.RESPONSE_TOO_LONG
    if isinstance(exc, FileStructureError | TLVError | LDSError):
        return Reason.MALFORMED
    if isinstance(exc, CardError | QAError):
        return Reason.READ_FAILED
    return Reason.MALFORMED


def select_application(transport: Transport) -> int:
    """SELECT the LDS1 application; resend once if a previous SM session was still open."""
    response = transport.transmit(select_applet_command())
    if response.sw in _SM_ABORTED:  # ICAO 9303-11 §9.8.6: a plain APDU ends the old session
        response = transport.transmit(select_applet_command())
    return response.sw


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How many bytes per READ BINARY, and whether extended Le is used."""

    block: int = reader.SM_SHORT_BLOCK
    extended: bool = False


def read_plan(transport: Transport) -> ReadPlan:
    """Extended reads only when both the reader path and the chip (7F66) offer them."""
    if transport.max_command_data <= SHORT_MAX_LC:
        return ReadPlan()
    response = transport.transmit(_LENGTH_INFO)
    if response.sw != SW.OK:
        return ReadPlan()  # the chip gives no length information: short Le works everywhere
    try:
        max_response = parse_length_info(response.data)[1]
    except APDUError:
        return ReadPlan()
    block = min(reader.EXTENDED_BLOCK, max_response - SM_RESPONSE_OVERHEAD)
    return ReadPlan(block, True) if block > reader.SM_SHORT_BLOCK else ReadPlan()


def open_session(transport: Transport, keys: DocumentKeys, rng: RNG) -> SecureMessaging | Finding:
    """BAC (ICAO 9303-11 §4.3): the SM session, or a ``bac_failed`` finding."""
    try:
        return bac.perform_bac(transport, keys.mrz_information(), rng)
    except ReaderError:
        raise
    except ResponseTooLongError as exc:
        return Finding(Reason.RESPONSE_TOO_LONG, str(exc))
    except CardError as exc:
        return Finding(Reason.BAC_FAILED, str(exc))


def read_ef(transport: Transport, fid: int, plan: ReadPlan,
            max_bytes: int = reader.DEFAULT_MAX_FILE_BYTES) -> bytes:
    """SELECT and read one TLV-structured EF of at most ``max_bytes``, the first READ already a
    full block."""
    reader.select_file(transport, fid)
    try:
        first = reader.read_binary(transport, 0, plan.block, plan.extended)
    except StatusWordError as exc:
        if exc.sw not in _RETRY_SHORT:
            raise
        # A chip that will not answer a block longer than the file: learn the length first.
        first = reader.read_binary(transport, 0, reader.HEADER_READ, plan.extended)
    return reader.read_to_end(transport, fid, first, plan.block, plan.extended, max_bytes)


class FileReader:
    """Reads EFs over a secure transport, keeping what was read, missing, or failed."""

    def __init__(self, transport: Transport, plan: ReadPlan,
                 max_file_bytes: FileCaps | None = None) -> None:
        self.transport = transport
        self.plan = plan
        self.max_file_bytes = max_file_bytes
        self.files: dict[str, bytes] = {}
        self.missing: list[str] = []
        self.failure: Finding | None = None

    def read(self, ef: EFInfo) -> bytes | None:
        """The file's bytes; None when absent (6A82) or after a failure ends the session."""
        if self.failure is not None:
            return None
        try:
            data = read_ef(self.transport, ef.fid, self.plan,
                           file_cap(self.max_file_bytes, ef.name))
        except ReaderError:
            raise
        except StatusWordError as exc:
            if exc.sw == SW.FILE_NOT_FOUND:
                self.missing.append(ef.name)
                return None
            self.failure = Finding(Reason.READ_FAILED, f"{ef.name}: SW {exc.sw:04X}")
            return None
        except CardError as exc:
            self.failure = Finding(reason_for(exc), f"{ef.name}: {exc}")
            return None
        self.files[ef.name] = data
        return data
