"""The virtual eMRTD: a card-side ICAO 9303 LDS1 applet with a JMRTD-style perso profile.

Lifecycle: BLANK → PERSONALIZING (plain CREATE / SELECT / UPDATE / READ, GET DATA 7F66,
GENERATE KEY, PUT DATA, LOCK) → LOCKED (reads only after BAC, everything under secure
messaging). The ATR is a PC/SC Part 3 contactless ATR with a fixed historical part: the chip
serial is deliberately not in it, so a card cannot be traced without access control.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import aa, bac
from applets.emrtd.errors import SMCheck, SMError
from applets.emrtd.lds.files import BY_FID, LDS1_AID
from applets.emrtd.sm import SM_CLA_BITS, SecureMessaging
from applets.errors import CardError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.virtual import hostile
from applets.virtual.hostile import Hostile
from common.curves import SECP256R1 as AA_CURVE

HISTORICAL = b"cardline eMRTD"
FILE_HEADER_BYTES = 16  # EEPROM written to allocate one file (modelled, not measured)
KEY_BYTES = 32
_SEED_TAG = 0x62
RNG = Callable[[int], bytes]


class Lifecycle(Enum):
    """Where the chip is in its life."""

    BLANK = "blank"
    PERSONALIZING = "personalizing"
    LOCKED = "locked"


@dataclass
class ChipMemory:
    """Everything the chip keeps across power cycles (its EEPROM)."""

    files: dict[int, bytearray] = field(default_factory=dict)
    bac_keys: tuple[bytes, bytes] | None = None
    aa_scalar: bytes | None = None  # the AA private key: never returned by any command
    locked: bool = False
    hostile: Hostile | None = None  # a test mode: how the chip misbehaves once locked

    @property
    def lifecycle(self) -> Lifecycle:
        """BLANK until the first write, LOCKED after LOCK."""
        if self.locked:
            return Lifecycle.LOCKED
        written = self.files or self.bac_keys or self.aa_scalar
        return Lifecycle.PERSONALIZING if written else Lifecycle.BLANK


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
        self._applet = False
        self._current: int | None = None
        self._sm: SecureMessaging | None = None
        self._bac: bac.BACCard | None = None

    # -- CardLike ---------------------------------------------------------------------
    def atr(self) -> bytes:
        """The contactless ATR (fixed historical bytes, no serial)."""
        return contactless_atr(HISTORICAL)

    def power_on(self) -> None:
        """Field on: volatile state starts fresh."""
        self._applet, self._current, self._sm, self._bac = False, None, None, None

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
        """True while a BAC secure-messaging session is open."""
        return self._sm is not None

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
            self._sm = None
            return _sw(SW.SM_DATA_OBJECTS_MISSING)
        if command.cla != 0x00:
            return _sw(SW.CLA_NOT_SUPPORTED)
        return self._dispatch(command)

    def _secure(self, command: CommandAPDU) -> ResponseAPDU:
        session = self._sm
        if session is None:
            return _sw(SW.SM_NOT_SUPPORTED)
        try:
            plain = session.unwrap_command(command)
        except SMError as exc:  # ICAO 9303-11 §9.8.6: end the session, answer without SM
            self._sm = None
            missing = exc.check is SMCheck.MISSING_DO
            return _sw(SW.SM_DATA_OBJECTS_MISSING if missing else SW.SM_DATA_OBJECTS_INCORRECT)
        if plain.cla != 0x00:
            return session.wrap_response(_sw(SW.CLA_NOT_SUPPORTED))
        return session.wrap_response(self._dispatch(plain))

    def _dispatch(self, command: CommandAPDU) -> ResponseAPDU:
        answer = self._hostile_answer(command)
        if answer is not None:
            return answer
        handler = self._HANDLERS.get(command.ins)
        if handler is None:
            return _sw(SW.INS_NOT_SUPPORTED)
        if command.ins != 0xA4 and not self._applet:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        return handler(self, command)

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

    def _guarded(self) -> ResponseAPDU | None:
        """Reads need BAC once the chip is locked (ICAO 9303-11 §4.3)."""
        if self.memory.locked and self._sm is None:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        return None

    # -- file system ------------------------------------------------------------------
    def _select(self, command: CommandAPDU) -> ResponseAPDU:
        if command.p1 == 0x04:
            if command.data != LDS1_AID:
                return _sw(SW.FILE_NOT_FOUND)
            self._applet, self._current = True, None
            return _sw(SW.OK)
        if not self._applet:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if command.p1 not in (0x00, 0x02) or len(command.data) != 2:
            return _sw(SW.WRONG_LENGTH if command.p1 in (0x00, 0x02) else SW.INCORRECT_P1P2)
        refused = self._guarded()
        if refused is not None:
            return refused
        fid = int.from_bytes(command.data, "big")
        if fid not in self.memory.files:
            return _sw(SW.FILE_NOT_FOUND)
        self._current = fid
        return _sw(SW.OK)

    def _read_target(self, command: CommandAPDU) -> tuple[int, int] | ResponseAPDU:
        if command.p1 & 0x80:  # ISO 7816-4 §7.2.2: P1 = 100 SFI, P2 = offset
            fid = 0x0100 | (command.p1 & 0x1F)
            if fid not in self.memory.files:
                return _sw(SW.FILE_NOT_FOUND)
            self._current = fid
            return fid, command.p2
        if self._current is None:
            return _sw(SW.COMMAND_NOT_ALLOWED)
        return self._current, (command.p1 << 8) | command.p2

    def _read(self, command: CommandAPDU) -> ResponseAPDU:
        refused = self._guarded()
        if refused is not None:
            return refused
        target = self._read_target(command)
        if isinstance(target, ResponseAPDU):
            return target
        return self._read_at(target[0], target[1], command.ne, wrap=False)

    def _read_odd(self, command: CommandAPDU) -> ResponseAPDU:
        refused = self._guarded()
        if refused is not None:
            return refused
        if command.p1 or command.p2 or self._current is None:  # only the current EF
            return _sw(SW.COMMAND_NOT_ALLOWED if self._current is None else SW.INCORRECT_P1P2)
        try:  # ISO 7816-4 §7.2.3: offset in DO54
            offset = int.from_bytes(tlv.decode_single(command.data, 0x54).value, "big")
        except CardError:
            return _sw(SW.WRONG_DATA)
        return self._read_at(self._current, offset, command.ne, wrap=True)

    def _read_at(self, fid: int, offset: int, ne: int | None, wrap: bool) -> ResponseAPDU:
        content = hostile.served(self._hostile, fid, self.memory.files[fid])
        if ne is None:
            return _sw(SW.WRONG_LENGTH)
        if offset > len(content):
            return _sw(SW.WRONG_P1P2)
        count = ne
        while wrap and count > 0 and len(tlv.encode(0x53, bytes(count))) > ne:
            count -= 1
        data = bytes(content[offset : offset + count])
        status = SW.OK if len(data) == count else 0x6282  # 6282: end of file first
        if self._hostile is Hostile.LONGER_THAN_LE:
            data = hostile.overlong(data, count)
        return _sw(status, tlv.encode(0x53, data) if wrap else data)

    def _create(self, command: CommandAPDU) -> ResponseAPDU:
        if self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        data = command.data
        if len(data) < 6:
            return _sw(SW.WRONG_LENGTH)
        if data[0] != 0x63 or data[1] < 4:  # JMRTD profile: 63 04 size(2) fid(2)
            return _sw(SW.DATA_INVALID)
        size, fid = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:6], "big")
        if fid not in BY_FID:
            return _sw(SW.WRONG_DATA)
        existing = self.memory.files.get(fid)
        if existing is not None:  # the first CREATE fixes the size
            return _sw(SW.OK if size <= len(existing) else SW.NOT_ENOUGH_MEMORY)
        self.memory.files[fid] = bytearray(size)
        self._changed(FILE_HEADER_BYTES)
        return _sw(SW.OK)

    def _update(self, command: CommandAPDU) -> ResponseAPDU:
        if self.memory.locked or self._current is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if command.p1 & 0x80:
            return _sw(SW.INCORRECT_P1P2)
        offset = (command.p1 << 8) | command.p2
        content = self.memory.files[self._current]
        if offset + len(command.data) > len(content):
            return _sw(SW.NOT_ENOUGH_MEMORY)
        content[offset : offset + len(command.data)] = command.data
        self._changed(len(command.data))
        return _sw(SW.OK)

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
        if self.memory.locked or self.memory.aa_scalar is not None:
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
        return ec.derive_private_key(int.from_bytes(scalar, "big"), AA_CURVE.curve())

    def _put_data(self, command: CommandAPDU) -> ResponseAPDU:
        if self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if (command.p1, command.p2) == (0xDE, 0xAD):
            if self.memory.bac_keys is None:  # a chip locked without BAC keys is unreadable
                return _sw(SW.CONDITIONS_NOT_SATISFIED)
            self.memory.locked = True
            self._changed(1)
            return _sw(SW.OK)
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
        self._changed(2 * KEY_BYTES)
        return _sw(SW.OK)

    # -- access control -----------------------------------------------------------------
    def _challenge(self, command: CommandAPDU) -> ResponseAPDU:
        keys = self.memory.bac_keys
        if not self.memory.locked or keys is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        self._bac = bac.BACCard(keys[0], keys[1], self.rng)
        return self._bac.get_challenge(command)

    def _external_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        if not self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if self._bac is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        response, session = self._bac.external_authenticate(command)
        self._bac = None
        if session is not None:
            self._sm, self._current = session, None
        return response

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
        0x82: _external_authenticate, 0x88: _internal_authenticate,
    }
