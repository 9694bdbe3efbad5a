"""The chip's file system: the master file and the eMRTD application (ISO 7816-4 §5.3).

SELECT (by AID, the MF, or an EF by FID in the current directory: EF.CardAccess needs no MF
SELECT, being in the MF at power-on), READ BINARY (B0 by offset or SFI, B1 with DO54), and the
perso profile's CREATE FILE / UPDATE BINARY. Every read asks :mod:`applets.virtual.access`.
"""

from __future__ import annotations

from collections.abc import Callable

from applets.emrtd.lds.files import LDS1_AID
from applets.errors import CardError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.virtual import access, hostile
from applets.virtual.access import Directory, SecurityStatus
from applets.virtual.hostile import Hostile
from applets.virtual.memory import APPLICATION_FIDS, MF_FIDS, ChipMemory

FILE_HEADER_BYTES = 16  # EEPROM written to allocate one file (modelled, not measured)
MASTER_FILE = b"\x3f\x00"


def _sw(code: int, data: bytes = b"") -> ResponseAPDU:
    return ResponseAPDU(data, code)


class FileSystem:
    """The current directory and EF of one power-on, over the chip's memory."""

    def __init__(self, memory: ChipMemory, status: SecurityStatus,
                 changed: Callable[[int], None]) -> None:
        self.memory, self.status, self.changed = memory, status, changed
        self.directory = Directory.MF  # ISO 7816-4 §5.3: the MF is current after reset
        self.current: int | None = None

    @property
    def _in_application(self) -> bool:
        return self.directory is Directory.APPLICATION

    def _files(self) -> dict[int, bytearray]:
        """The files of the current directory."""
        return self.memory.mf_files if self.directory is Directory.MF else self.memory.files

    def _refusal(self, fid: int | None = None) -> ResponseAPDU | None:
        """The per-file access rule (:mod:`applets.virtual.access`); ``None``: allowed."""
        locked = self.memory.locked
        if fid is None:
            code = access.session_refusal(self.status, self.directory, locked)
        else:
            code = access.read_refusal(self.status, self.directory, fid, locked)
        return None if code is None else _sw(code)

    def select(self, command: CommandAPDU) -> ResponseAPDU:
        """SELECT by AID (the application), the MF, or an EF by FID in the current directory."""
        if command.p1 == 0x04:
            if command.data != LDS1_AID:
                return _sw(SW.FILE_NOT_FOUND)
            self.directory, self.current = Directory.APPLICATION, None
            return _sw(SW.OK)
        if command.p1 == 0x00 and command.data in (b"", MASTER_FILE):  # ISO 7816-4 §7.1.1
            self.directory, self.current = Directory.MF, None
            return _sw(SW.OK)
        if command.p1 not in (0x00, 0x02) or len(command.data) != 2:
            return _sw(SW.WRONG_LENGTH if command.p1 in (0x00, 0x02) else SW.INCORRECT_P1P2)
        fid = int.from_bytes(command.data, "big")
        if not self._in_application and fid not in MF_FIDS:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)  # an application file, application not selected
        refused = self._refusal()
        if refused is not None:
            return refused
        if fid not in self._files():
            return _sw(SW.FILE_NOT_FOUND)
        self.current = fid
        return _sw(SW.OK)

    def _read_target(self, command: CommandAPDU) -> tuple[int, int] | ResponseAPDU:
        if command.p1 & 0x80:  # ISO 7816-4 §7.2.2: P1 = 100 SFI, P2 = offset
            fid = 0x0100 | (command.p1 & 0x1F)
            if fid not in self._files():
                return _sw(SW.FILE_NOT_FOUND)
            return fid, command.p2
        if self.current is None:
            return _sw(SW.COMMAND_NOT_ALLOWED)
        return self.current, (command.p1 << 8) | command.p2

    def read(self, command: CommandAPDU, mode: Hostile | None) -> ResponseAPDU:
        """READ BINARY B0 of the current EF or by SFI."""
        refused = self._refusal()
        if refused is not None:
            return refused
        target = self._read_target(command)
        if isinstance(target, ResponseAPDU):
            return target
        refused = self._refusal(target[0])
        if refused is not None:
            return refused
        self.current = target[0]
        return self._read_at(target[0], target[1], command.ne, False, mode)

    def read_odd(self, command: CommandAPDU, mode: Hostile | None) -> ResponseAPDU:
        """READ BINARY B1 of the current EF, the offset in DO54."""
        refused = self._refusal()
        if refused is not None:
            return refused
        if command.p1 or command.p2 or self.current is None:  # only the current EF
            return _sw(SW.COMMAND_NOT_ALLOWED if self.current is None else SW.INCORRECT_P1P2)
        refused = self._refusal(self.current)
        if refused is not None:
            return refused
        try:  # ISO 7816-4 §7.2.3: offset in DO54
            offset = int.from_bytes(tlv.decode_single(command.data, 0x54).value, "big")
        except CardError:
            return _sw(SW.WRONG_DATA)
        return self._read_at(self.current, offset, command.ne, True, mode)

    def _read_at(self, fid: int, offset: int, ne: int | None, wrap: bool,
                 mode: Hostile | None) -> ResponseAPDU:
        stored = self._files()[fid]
        content = hostile.served(mode, fid, stored) if self._in_application else stored
        if ne is None:
            return _sw(SW.WRONG_LENGTH)
        if offset > len(content):
            return _sw(SW.WRONG_P1P2)
        count = ne
        while wrap and count > 0 and len(tlv.encode(0x53, bytes(count))) > ne:
            count -= 1
        data = bytes(content[offset : offset + count])
        status = SW.OK if len(data) == count else 0x6282  # 6282: end of file first
        if mode is Hostile.LONGER_THAN_LE:
            data = hostile.overlong(data, count)
        return _sw(status, tlv.encode(0x53, data) if wrap else data)

    def create(self, command: CommandAPDU) -> ResponseAPDU:
        """CREATE FILE of the JMRTD profile in the current directory (perso only)."""
        if self.memory.locked:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        data = command.data
        if len(data) < 6:
            return _sw(SW.WRONG_LENGTH)
        if data[0] != 0x63 or data[1] < 4:  # JMRTD profile: 63 04 size(2) fid(2)
            return _sw(SW.DATA_INVALID)
        size, fid = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:6], "big")
        if fid not in (APPLICATION_FIDS if self._in_application else MF_FIDS):
            return _sw(SW.WRONG_DATA)
        existing = self._files().get(fid)
        if existing is not None:  # the first CREATE fixes the size
            return _sw(SW.OK if size <= len(existing) else SW.NOT_ENOUGH_MEMORY)
        self._files()[fid] = bytearray(size)
        self.changed(FILE_HEADER_BYTES)
        return _sw(SW.OK)

    def update(self, command: CommandAPDU) -> ResponseAPDU:
        """UPDATE BINARY of the current EF (perso only)."""
        if self.memory.locked or self.current is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if command.p1 & 0x80:
            return _sw(SW.INCORRECT_P1P2)
        offset = (command.p1 << 8) | command.p2
        content = self._files()[self.current]
        if offset + len(command.data) > len(content):
            return _sw(SW.NOT_ENOUGH_MEMORY)
        content[offset : offset + len(command.data)] = command.data
        self.changed(len(command.data))
        return _sw(SW.OK)
