"""Reading an EAC chip (terminal side): EF.CardAccess, PACE or BAC, the LDS files, Chip
Authentication, Terminal Authentication, then DG3.

The order is EAC v1's (BSI TR-03110-1 §2.4; ICAO 9303-11 §4.4, §6.2, §7.1): EF.CardAccess is
selected by its FID straight away, in plain (never an MF SELECT: CCCD chips answer it 6D00);
PACE with the CAN or the MRZ (or BAC, when the caller asks) opens secure messaging; the
application is selected and DG14 read; CA with DG14's key restarts secure messaging; TA with
the inspection system's chain and signer unlocks DG3. Each step that fails raises its own
:class:`EACReadError` subclass, whose ``reason`` is a stable code.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import bac, ca, pace, reader, ta
from applets.emrtd.cvc import CVCertificate, Signer
from applets.emrtd.lds.dg14 import decode_dg14
from applets.emrtd.lds.files import DG3, EF_CARD_ACCESS, by_name
from applets.emrtd.lds.securityinfos import CardAccess, decode_card_access
from applets.emrtd.perso import chained, select_applet_command
from applets.emrtd.sm import SecureMessaging, SecureTransport
from applets.errors import CardError, StatusWordError
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport

RNG = Callable[[int], bytes]
DEFAULT_FILES = ("EF.COM", "EF.DG1", "EF.DG14", "EF.SOD")
FilesCheck = Callable[[Mapping[str, bytes]], None]


class EACReason(StrEnum):
    """Why an EAC read stopped (stable codes for QA's reasons)."""

    CARD_ACCESS_UNREADABLE = "card_access_unreadable"
    PACE_REFUSED = "pace_refused"
    BAC_REFUSED = "bac_refused"
    READ_FAILED = "read_failed"
    CA_FAILED = "ca_failed"
    TA_REFUSED = "ta_refused"
    DG3_UNREADABLE = "dg3_unreadable"


class EACReadError(CardError):
    """An EAC read failed; ``reason`` names the step, ``sw`` the card's answer if it gave one."""

    reason: ClassVar[EACReason]

    def __init__(self, detail: str, sw: int | None = None) -> None:
        self.detail, self.sw = detail, sw
        status = f" (SW {sw:04X})" if sw is not None else ""
        super().__init__(f"{self.reason.value}: {detail}{status}")


class CardAccessError(EACReadError):
    """EF.CardAccess is absent, unreadable or holds no PACEInfo this terminal can run."""

    reason = EACReason.CARD_ACCESS_UNREADABLE


class PACERefusedError(EACReadError):
    """PACE failed: wrong password, refused parameters, or a token that did not verify."""

    reason = EACReason.PACE_REFUSED


class BACRefusedError(EACReadError):
    """BAC failed (wrong MRZ, or a chip that accepts only PACE)."""

    reason = EACReason.BAC_REFUSED


class FileReadError(EACReadError):
    """An LDS file (or the application) could not be selected or read."""

    reason = EACReason.READ_FAILED


class CAFailedError(EACReadError):
    """Chip Authentication failed, or the chip did not continue under the agreed keys."""

    reason = EACReason.CA_FAILED


class TARefusedError(EACReadError):
    """Terminal Authentication was refused (chain, dates, rights or signature)."""

    reason = EACReason.TA_REFUSED


class DG3UnreadableError(EACReadError):
    """DG3 could not be read after Terminal Authentication (6982: no DG3 right)."""

    reason = EACReason.DG3_UNREADABLE


@dataclass(frozen=True, slots=True)
class PACEAccess:
    """PACE with a password; ``parameter_id`` picks one PACEInfo when the chip offers several."""

    password: pace.Password
    parameter_id: int | None = None

    @classmethod
    def can(cls, can: str, parameter_id: int | None = None) -> PACEAccess:
        """PACE with the card access number."""
        return cls(pace.can_password(can), parameter_id)

    @classmethod
    def mrz(cls, document_number: str, date_of_birth: str, date_of_expiry: str,
            parameter_id: int | None = None) -> PACEAccess:
        """PACE with the MRZ password."""
        return cls(pace.mrz_password(document_number, date_of_birth, date_of_expiry),
                   parameter_id)


@dataclass(frozen=True, slots=True)
class BACAccess:
    """BAC with the three MRZ fields; the document number is also TA's ID_PICC after BAC."""

    document_number: str = field(repr=False)
    date_of_birth: str = field(repr=False)
    date_of_expiry: str = field(repr=False)


Access = PACEAccess | BACAccess


@dataclass(frozen=True, slots=True)
class TerminalCredentials:
    """An inspection system: its CV chain from the chip's trust point down (DV, terminal) and
    a signer returning plain r ‖ s (the HSM's IS key, or a software key in tests)."""

    chain: Sequence[CVCertificate]
    signer: Signer = field(repr=False)


@dataclass(frozen=True, slots=True)
class EACResult:
    """What ran and what was read."""

    protocols: tuple[str, ...]  # in order, e.g. ("PACE", "CA", "TA")
    files: Mapping[str, bytes]  # by EF name, EF.CardAccess included when read
    missing: tuple[str, ...]  # asked for, answered 6A82
    pace: pace.PACEParameters | None = None


def _sw_of(exc: CardError) -> int | None:
    """The status word an error carries (BAC, PACE, CA, TA and status-word errors keep one)."""
    sw = getattr(exc, "sw", None)
    return sw if isinstance(sw, int) else None


class _Chaining:
    """A transport that sends a command too long for the path as a chain (CLA 10 parts)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    @property
    def max_command_data(self) -> int:
        """Any length: the parts fit the inner path."""
        return 0xFFFF

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Send whole, or in parts of the inner path's size; the last part's answer."""
        *first, last = chained(command, self.inner.max_command_data)
        for part in first:
            answer = self.inner.transmit(part)
            if answer.sw != SW.OK:
                return answer
        return self.inner.transmit(last)


def read_card_access(transport: Transport) -> tuple[bytes, CardAccess]:
    """SELECT 011C by FID (no MF SELECT) and read EF.CardAccess in plain: bytes and infos."""
    try:
        raw = reader.read_file(transport, EF_CARD_ACCESS.fid)
        return raw, decode_card_access(raw)
    except StatusWordError as exc:
        raise CardAccessError(str(exc), exc.sw) from exc
    except CardError as exc:
        raise CardAccessError(str(exc)) from exc


# The PACE domains this terminal takes first when the chip offers several and none is asked
# for: P-256, where its side of PACE runs in OpenSSL (applets.emrtd.ecssl), ~2 ms a run
# instead of ~10 ms on brainpoolP256r1 in pure Python. The chip's side costs the same on both.
PREFERRED_PACE_IDS = (12,)


def choose_pace(card_access: CardAccess, parameter_id: int | None = None) -> (
        pace.PACEParameters):
    """The PACEInfo this terminal runs (ECDH-GM, a standardized domain): the one with
    ``parameter_id`` when given, else a preferred domain the chip offers, else the first."""
    usable: list[pace.PACEParameters] = []
    for info in card_access.pace_infos:
        if info.parameter_id is None or parameter_id not in (None, info.parameter_id):
            continue
        try:
            usable.append(pace.PACEParameters(info.protocol, info.parameter_id))
        except pace.PACEError:
            continue
    if not usable:
        raise CardAccessError("no PACEInfo with ECDH generic mapping"
                              + (f" and parameter id {parameter_id}" if parameter_id else ""))
    preferred = [p for p in usable if p.parameter_id in PREFERRED_PACE_IDS]
    return (preferred or usable)[0]


def open_pace(transport: Transport, access: PACEAccess, parameters: pace.PACEParameters,
              rng: RNG) -> pace.PACEResult:
    """PACE (ICAO 9303-11 §4.4) over the plain transport; the result carries the session."""
    try:
        return pace.establish(transport.transmit, access.password, oid=parameters.oid,
                              parameter_id=parameters.parameter_id, rng=rng)
    except pace.PACEError as exc:
        raise PACERefusedError(str(exc), exc.sw) from exc


def open_bac(transport: Transport, access: BACAccess, rng: RNG) -> SecureMessaging:
    """SELECT the application in plain, then BAC (ICAO 9303-11 §4.3)."""
    answer = transport.transmit(select_applet_command())
    if answer.sw != SW.OK:
        raise FileReadError("SELECT application", answer.sw)
    info = bac.mrz_information(access.document_number, access.date_of_birth,
                               access.date_of_expiry)
    try:
        return bac.perform_bac(transport, info, rng)
    except CardError as exc:
        raise BACRefusedError(str(exc), _sw_of(exc)) from exc


def read_files(secure: Transport, names: Sequence[str], files: dict[str, bytes],
               missing: list[str]) -> None:
    """Read each named EF into ``files``; 6A82 goes to ``missing``, anything else raises."""
    for name in names:
        if name in files:
            continue
        try:
            files[name] = reader.read_file(secure, by_name(name).fid)
        except StatusWordError as exc:
            if exc.sw != SW.FILE_NOT_FOUND:
                raise FileReadError(f"{name}: {exc}", exc.sw) from exc
            missing.append(name)
        except CardError as exc:
            raise FileReadError(f"{name}: {exc}") from exc


def chip_authentication(secure: SecureTransport, dg14: bytes,
                        rng: RNG) -> tuple[SecureTransport, bytes]:
    """CA v1 with DG14's key (trust it only after passive authentication): the transport
    under the new keys, proven by one command, and Comp(PK_PCD) for TA."""
    try:
        security = decode_dg14(dg14)
        key = security.ca_public_keys[0]
        infos = [i for i in security.ca_infos if i.key_id == key.key_id] or security.ca_infos
        oid = infos[0].protocol
        ephemeral = ec.derive_private_key(pace.random_scalar(key.curve, rng),
                                          key.curve.crypto_curve())
        session = ca.perform_ca(secure, key.public_key, key.curve, ephemeral, oid, key.key_id)
    except IndexError as exc:
        raise CAFailedError("DG14 holds no Chip Authentication key and info") from exc
    except CardError as exc:
        raise CAFailedError(str(exc), _sw_of(exc)) from exc
    renewed = SecureTransport(secure.transport, session)
    try:  # ICAO 9303-11 §6.2.3: the first command under the new keys is the proof
        reader.select_file(renewed, by_name("EF.DG14").fid)
    except CardError as exc:
        raise CAFailedError(f"no answer under the new keys: {exc}", _sw_of(exc)) \
            from exc
    return renewed, ta.comp(ca.encoded_point(ephemeral.public_key()))


def terminal_authentication(secure: Transport, terminal: TerminalCredentials, id_picc: bytes,
                            comp_pk_pcd: bytes) -> None:
    """TA v1; certificates longer than the path go as command chains."""
    try:
        ta.perform_ta(_Chaining(secure), terminal.chain, terminal.signer, id_picc, comp_pk_pcd)
    except CardError as exc:
        raise TARefusedError(str(exc), _sw_of(exc)) from exc


def read_dg3(secure: Transport) -> bytes:
    """DG3, readable only after TA with DG3 rights."""
    try:
        return reader.read_file(secure, DG3.fid)
    except CardError as exc:
        raise DG3UnreadableError(str(exc), _sw_of(exc)) from exc


@dataclass
class _Run:
    """The terminal's state through one read."""

    transport: Transport
    rng: RNG
    protocols: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    parameters: pace.PACEParameters | None = None

    def access(self, access: Access) -> tuple[SecureTransport, bytes]:
        """PACE or BAC; the secure transport inside the application and TA's ID_PICC."""
        if isinstance(access, BACAccess):
            session = open_bac(self.transport, access, self.rng)
            self.protocols.append("BAC")
            return (SecureTransport(self.transport, session),
                    ta.id_picc_bac(access.document_number))
        self.files[EF_CARD_ACCESS.name], card_access = read_card_access(self.transport)
        self.parameters = choose_pace(card_access, access.parameter_id)
        result = open_pace(self.transport, access, self.parameters, self.rng)
        self.protocols.append("PACE")
        secure = SecureTransport(self.transport, result.session)
        try:
            secure.transmit(select_applet_command()).check("SELECT application")
        except CardError as exc:
            raise FileReadError(f"SELECT application: {exc}", _sw_of(exc)) from exc
        return secure, result.id_picc


def read_eac(transport: Transport, access: Access, *, files: Sequence[str] = DEFAULT_FILES,
             run_ca: bool = True, terminal: TerminalCredentials | None = None,
             before_ca: FilesCheck | None = None, rng: RNG = secrets.token_bytes) -> EACResult:
    """Read an EAC chip: access control, ``files``, CA, then TA and DG3 when ``terminal`` is
    given (``run_ca=False`` stops after the files). ``before_ca`` sees the files read so far
    (passive authentication, which must pass before DG14's key is trusted) and raises to
    stop."""
    run = _Run(transport, rng)
    secure, id_picc = run.access(access)
    eac = run_ca or terminal is not None
    wanted = [*files, "EF.DG14"] if eac else files
    read_files(secure, list(dict.fromkeys(wanted)), run.files, run.missing)
    if eac and "EF.DG14" in run.files:
        if before_ca is not None:
            before_ca(run.files)
        secure, comp_pk_pcd = chip_authentication(secure, run.files["EF.DG14"], rng)
        run.protocols.append("CA")
        if terminal is not None:
            terminal_authentication(secure, terminal, id_picc, comp_pk_pcd)
            run.protocols.append("TA")
            run.files[DG3.name] = read_dg3(secure)
    elif terminal is not None:
        raise CAFailedError("no DG14: no Chip Authentication, so no Terminal Authentication")
    return EACResult(tuple(run.protocols), dict(run.files), tuple(run.missing), run.parameters)
