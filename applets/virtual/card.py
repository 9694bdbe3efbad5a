"""The virtual eMRTD: a card-side ICAO 9303 LDS1 applet with a JMRTD-style perso profile.

Lifecycle: BLANK → PERSONALIZING (plain CREATE / SELECT / UPDATE / READ, GET DATA 7F66,
GENERATE KEY, PUT DATA, LOCK) → LOCKED (reads under secure messaging opened by BAC or PACE;
the rules per file are :mod:`applets.virtual.access`'s). Two directories: the master file,
current at power-on, holds EF.CardAccess (011C, read always, selectable by FID without an MF
SELECT); SELECT of the eMRTD AID enters the application. PACE, Chip Authentication and
Terminal Authentication are :mod:`applets.virtual.eac_chip`'s; the EAC perso commands are
:mod:`applets.virtual.eac_perso`'s. The ATR is a PC/SC Part 3 contactless ATR with a fixed
historical part: the chip serial is deliberately not in it, so a card cannot be traced without
access control.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import aa, bac
from applets.emrtd.errors import SMCheck, SMError
from applets.emrtd.pace import CHAINING
from applets.emrtd.perso import CA_KEY_REFERENCE
from applets.emrtd.sm import SM_CLA_BITS, SecureMessaging
from applets.errors import CardError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.virtual import eac_perso, hostile
from applets.virtual.access import Directory, SecurityStatus, Session
from applets.virtual.eac_chip import EACChip
from applets.virtual.filesystem import FileSystem
from applets.virtual.hostile import Hostile
from applets.virtual.memory import (
    AccessProtocols,
    ChipMemory,
    Lifecycle,
)
from common.curves import SECP256R1 as AA_CURVE

HISTORICAL = b"cardline eMRTD"
KEY_BYTES = 32
_SEED_TAG = 0x62
RNG = Callable[[int], bytes]
CHAINING_NOT_SUPPORTED = 0x6884  # ISO 7816-4 §5.6: command chaining not supported
MAX_CHAIN = 4096  # bytes a chained command may gather (a CV certificate or a trust point)
_CHAINED_INS = frozenset({0x2A, 0xDA})  # PSO:Verify Certificate, PUT DATA (trust point)
_MF_INS = frozenset({0xA4, 0xB0, 0xB1, 0x22, 0x86, 0xE0, 0xD6})  # what the MF answers
__all__ = ["AccessProtocols", "ChipMemory", "Lifecycle", "VirtualEMRTD", "contactless_atr"]


def _sw(code: int, data: bytes = b"") -> ResponseAPDU:
    return ResponseAPDU(data, code)


def contactless_atr(historical: bytes) -> bytes:
    """PC/SC Part 3 §3.1.3.2.3 ATR: 3B 8n 80 01 ‖ historical bytes ‖ TCK."""
    body = bytes((0x8 << 4 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes((tck,))


class VirtualEMRTD:
    """A :class:`~applets.transport.base.CardLike` eMRTD chip."""

    def __init__(
        self, serial: str, memory: ChipMemory | None = None, rng: RNG = secrets.token_bytes,
        max_command_data: int = 65535, on_change: Callable[[ChipMemory], None] | None = None,
        write_through: bool = True,
    ) -> None:
        self.serial = serial
        self.memory = memory if memory is not None else ChipMemory()
        self.rng = rng
        self.max_command_data = max_command_data
        self.on_change = on_change
        # write_through=False: persist at power-off and reset only (the card host's mode:
        # EEPROM timing is modelled by the timing model; the file only has to outlive removal).
        self.write_through = write_through
        self._dirty = False
        self._lock = threading.RLock()  # the bridge thread executes, the host thread may flush
        self.last_eeprom_bytes = 0
        self.power_on()

    # -- CardLike ---------------------------------------------------------------------
    def atr(self) -> bytes:
        """The contactless ATR (fixed historical bytes, no serial)."""
        return contactless_atr(HISTORICAL)

    def power_on(self) -> None:
        """Field on: volatile state starts fresh, in the master file."""
        self._sm: SecureMessaging | None = None
        self._bac: bac.BACCard | None = None
        self._chain: bytes | None = None  # data gathered by command chaining (CLA 10)
        self.status = SecurityStatus()
        self._fs = FileSystem(self.memory, self.status, self._changed)
        self._eac = EACChip(self.memory, self.status, self.rng, self._changed)

    def power_off(self) -> None:
        """Field off: session keys and selections are lost; memory is persisted."""
        self.flush()
        self.power_on()

    def reset(self) -> None:
        """Warm reset; memory is persisted."""
        self.flush()
        self.power_on()

    def flush(self) -> None:
        """Hand the memory to ``on_change`` if it changed since the last hand-over."""
        with self._lock:
            if self._dirty and self.on_change is not None:
                self._dirty = False
                self.on_change(self.memory)

    def execute(self, command: bytes) -> bytes:
        """Raw command in, raw response out; never raises."""
        with self._lock:
            return self._execute_locked(command)

    def _execute_locked(self, command: bytes) -> bytes:
        self.last_eeprom_bytes = 0
        if self._hostile is Hostile.SLOW:
            time.sleep(hostile.SLOW_SECONDS)
        try:
            return self._execute(bytes(command)).encode()
        except Exception:
            return SW.UNKNOWN.to_bytes(2, "big")

    @property
    def _hostile(self) -> Hostile | None:
        """The chip's test mode; it only shows once the chip is locked."""
        return self.memory.hostile if self.memory.locked else None

    @property
    def secure_session(self) -> bool:
        """True while a secure-messaging session (BAC, PACE, after CA) is open."""
        return self._sm is not None

    @property
    def _applet(self) -> bool:
        return self._fs.directory is Directory.APPLICATION

    def _open_session(self, session: SecureMessaging, opened_by: Session) -> None:
        self._sm, self._fs.current = session, None
        self.status.open(opened_by)
        self._eac.reset()

    def _end_session(self) -> None:
        """ICAO 9303-11 §9.8.6: the session keys and every right they carried are gone."""
        self._sm = None
        self.status.close()
        self._eac.reset()

    def _switch_session(self) -> None:
        """After PACE's last step or CA's answer, the next command uses the new keys."""
        session = self._eac.take_session()
        if session is not None:
            self._sm = session

    # -- dispatch ---------------------------------------------------------------------
    def _execute(self, raw: bytes) -> ResponseAPDU:
        try:
            command = CommandAPDU.decode(raw)
        except CardError:
            return _sw(SW.WRONG_LENGTH)
        if len(command.data) > self.max_command_data or (
            command.needs_extended and self.max_command_data <= 255
        ):
            return _sw(SW.WRONG_LENGTH)
        if command.cla & SM_CLA_BITS == SM_CLA_BITS:
            return self._secure(command)
        if self._sm is not None:  # ICAO 9303-11 §9.8.6: a plain APDU aborts secure messaging
            self._end_session()
            return _sw(SW.SM_DATA_OBJECTS_MISSING)
        if command.cla not in (0x00, CHAINING):
            return _sw(SW.CLA_NOT_SUPPORTED)
        response = self._dispatch(command)
        self._switch_session()  # PACE: its last answer is plain, what follows is not
        return response

    def _secure(self, command: CommandAPDU) -> ResponseAPDU:
        session = self._sm
        if session is None:
            return _sw(SW.SM_NOT_SUPPORTED)
        try:
            plain = session.unwrap_command(command)
        except SMError as exc:  # ICAO 9303-11 §9.8.6: end the session, answer without SM
            self._end_session()
            missing = exc.check is SMCheck.MISSING_DO
            return _sw(SW.SM_DATA_OBJECTS_MISSING if missing else SW.SM_DATA_OBJECTS_INCORRECT)
        if plain.cla not in (0x00, CHAINING):
            return session.wrap_response(_sw(SW.CLA_NOT_SUPPORTED))
        response = session.wrap_response(self._dispatch(plain))
        self._switch_session()  # ICAO 9303-11 §6.2.3: CA's answer still under the old keys
        return response

    def _dispatch(self, command: CommandAPDU) -> ResponseAPDU:
        answer = self._hostile_answer(command)
        if answer is not None:
            return answer
        handler = self._HANDLERS.get(command.ins)
        if handler is None:
            return _sw(SW.INS_NOT_SUPPORTED)
        if command.ins not in _MF_INS and not self._applet:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        gathered = self._gather(command)
        if isinstance(gathered, ResponseAPDU):
            return gathered
        return handler(self, gathered)

    def _gather(self, command: CommandAPDU) -> CommandAPDU | ResponseAPDU:
        """ISO 7816-4 §5.1.1.1 command chaining: gather CLA 10 parts until the last one.

        GENERAL AUTHENTICATE keeps its CLA: PACE's steps are chained by protocol, not by data.
        """
        chain, self._chain = self._chain, None
        if command.ins == 0x86:
            return command
        if command.ins not in _CHAINED_INS:
            return _sw(CHAINING_NOT_SUPPORTED) if command.cla & CHAINING else command
        data = (chain or b"") + command.data
        if len(data) > MAX_CHAIN:
            return _sw(SW.WRONG_LENGTH)
        if command.cla & CHAINING:
            self._chain = data
            return _sw(SW.OK)
        return replace(command, data=data, extended=command.extended or len(data) > 255)

    def _hostile_answer(self, command: CommandAPDU) -> ResponseAPDU | None:
        """get_response_forever: after BAC, reads and GET RESPONSE always have "more" (61xx)."""
        forever = self._hostile is Hostile.GET_RESPONSE_FOREVER and self._sm is not None
        reading = command.ins in (0xB0, 0xB1, 0xC0)
        return _sw(hostile.MORE_AVAILABLE) if forever and reading else None

    def _changed(self, eeprom_bytes: int) -> None:
        self.last_eeprom_bytes += eeprom_bytes
        self._dirty = True
        if self.write_through:
            self.flush()

    # -- file system (applets.virtual.filesystem) ---------------------------------------
    def _select(self, command: CommandAPDU) -> ResponseAPDU:
        return self._fs.select(command)

    def _read(self, command: CommandAPDU) -> ResponseAPDU:
        return self._fs.read(command, self._hostile)

    def _read_odd(self, command: CommandAPDU) -> ResponseAPDU:
        return self._fs.read_odd(command, self._hostile)

    def _create(self, command: CommandAPDU) -> ResponseAPDU:
        return self._fs.create(command)

    def _update(self, command: CommandAPDU) -> ResponseAPDU:
        return self._fs.update(command)

    # -- personalization data -----------------------------------------------------------
    def _get_data(self, command: CommandAPDU) -> ResponseAPDU:
        if (command.p1, command.p2) != (0x7F, 0x66):
            return _sw(SW.REFERENCE_DATA_NOT_FOUND)
        # ISO 7816-4 §12.7.1: extended length information, max command / response data
        limit = min(self.max_command_data, 0xFFFF)
        response_limit = 0xFFFF if self.max_command_data > 255 else 256
        if self._hostile is Hostile.LONGER_THAN_LE:  # keeps Le + 64 within any reader's buffer
            response_limit = min(response_limit, hostile.RESPONSE_LIMIT)
        body = tlv.encode(0x02, limit.to_bytes(2, "big"))
        body += tlv.encode(0x02, response_limit.to_bytes(2, "big"))
        return _sw(SW.OK, tlv.encode(0x7F66, body))

    def _generate(self, command: CommandAPDU) -> ResponseAPDU:
        if self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if (command.p1, command.p2) == (0x00, CA_KEY_REFERENCE):
            answer, written = eac_perso.generate_ca_key(self.memory, command, self.rng)
            if written:
                self._changed(written)
            return answer
        if self.memory.aa_scalar is not None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)  # one key per chip, never replaced
        if command.p1 or command.p2:
            return _sw(SW.INCORRECT_P1P2)
        # FIPS 186-5 A.2.1: d = (c mod (n − 1)) + 1 from 64 extra bits; rng is injectable
        scalar = int.from_bytes(self.rng(KEY_BYTES + 8), "big") % (AA_CURVE.n - 1) + 1
        self.memory.aa_scalar = scalar.to_bytes(KEY_BYTES, "big")
        self._changed(KEY_BYTES)
        return _sw(SW.OK, aa.encode_public_key_template(self._aa_key().public_key()))

    def _aa_key(self) -> ec.EllipticCurvePrivateKey:
        scalar = self.memory.aa_scalar
        if scalar is None:
            raise CardError("no Active Authentication key")
        return ec.derive_private_key(int.from_bytes(scalar, "big"), AA_CURVE.crypto_curve())

    def _put_data(self, command: CommandAPDU) -> ResponseAPDU:
        if self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if (command.p1, command.p2) == (0xDE, 0xAD):
            if not self.memory.ready_to_lock():  # a chip locked without its keys is unreadable
                return _sw(SW.CONDITIONS_NOT_SATISFIED)
            self.memory.locked = True
            self._changed(1)
            return _sw(SW.OK)
        if command.p1 == 0x00 and command.p2 in eac_perso.EAC_TAGS:
            answer, written = eac_perso.put_data(self.memory, command)
            if written:
                self._changed(written)
            return answer
        if (command.p1, command.p2) != (0x00, _SEED_TAG):
            return _sw(SW.INCORRECT_P1P2)
        try:
            fields = [obj.value.decode("ascii") for obj in
                      tlv.decode_all(tlv.decode_single(command.data, _SEED_TAG).value)]
            if len(fields) != 3:
                raise CardError("BAC seed needs document number, DOB and DOE")
            mrz_info = bac.mrz_information(*fields)
        except (CardError, UnicodeDecodeError):
            return _sw(SW.WRONG_DATA)
        self.memory.bac_keys = bac.document_keys(mrz_info)
        self.memory.document_number = fields[0].strip().upper().ljust(9, "<")
        self._changed(2 * KEY_BYTES + len(fields[0]))
        return _sw(SW.OK)

    # -- access control -----------------------------------------------------------------
    def _challenge(self, command: CommandAPDU) -> ResponseAPDU:
        if not self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if self._sm is not None:  # under secure messaging: r_PICC of Terminal Authentication
            return self._eac.get_challenge(command)
        keys = self.memory.bac_keys
        if keys is None or not self.memory.access.bac:  # a PACE-only chip refuses BAC
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        self._bac = bac.BACCard(keys[0], keys[1], self.rng)
        return self._bac.get_challenge(command)

    def _external_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        if not self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if self._sm is not None:
            return self._eac.external_authenticate(command)
        if self._bac is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        response, session = self._bac.external_authenticate(command)
        self._bac = None
        if session is not None:
            self._open_session(session, Session.BAC)
        return response

    def _manage(self, command: CommandAPDU) -> ResponseAPDU:
        return self._eac.manage(command, secure=self._sm is not None)

    def _general_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        return self._eac.general_authenticate(command, secure=self._sm is not None)

    def _verify_certificate(self, command: CommandAPDU) -> ResponseAPDU:
        if not self.memory.locked or self._sm is None:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        return self._eac.verify_certificate(command)

    def _internal_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        if not self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if self._sm is None or self.memory.aa_scalar is None:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        if len(command.data) != aa.CHALLENGE_LENGTH:
            return _sw(SW.WRONG_LENGTH)
        return _sw(SW.OK, aa.sign_ecdsa(self._aa_key(), command.data))

    _HANDLERS: ClassVar[Mapping[int, Callable[[VirtualEMRTD, CommandAPDU], ResponseAPDU]]] = {
        0xA4: _select, 0xB0: _read, 0xB1: _read_odd, 0xD6: _update, 0xE0: _create,
        0xCA: _get_data, 0x46: _generate, 0xDA: _put_data, 0x84: _challenge,
        0x82: _external_authenticate, 0x88: _internal_authenticate, 0x22: _manage,
        0x86: _general_authenticate, 0x2A: _verify_certificate,
    }
