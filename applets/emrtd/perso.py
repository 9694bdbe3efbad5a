"""The personalization command profile (terminal side): JMRTD passport-applet baseline + cardline.

JMRTD perso profile (fact sheet §1.2): SELECT applet, CREATE FILE ``63 04 size fid``, SELECT
EF, UPDATE BINARY, PUT DATA 62 (BAC seed), LOCK (PUT DATA DEAD). cardline adds GET DATA 7F66
(ISO 7816-4 §12.7.1 extended length information) to pick the chunk size and ISO 7816-8
GENERATE ASYMMETRIC KEY PAIR for the on-chip Active Authentication key.
"""

from __future__ import annotations

from collections.abc import Mapping

from applets.emrtd import aa
from applets.emrtd.lds.files import LDS1_AID
from applets.errors import APDUError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU
from applets.transport.base import Transport

MAX_OFFSET = 0x7FFF  # UPDATE BINARY B0/D6: P1P2 offset is 15 bits (ISO 7816-4 §7.2.2)
FIXED_APDUS = 4  # select applet, generate key, PUT DATA 62, LOCK


def select_applet_command() -> CommandAPDU:
    """SELECT the LDS1 application by AID, no FCI: ``00 A4 04 0C 07 A0000002471001``."""
    return CommandAPDU(0x00, 0xA4, 0x04, 0x0C, LDS1_AID)


def select_file_command(fid: int) -> CommandAPDU:
    """SELECT EF by file identifier, no FCI: ``00 A4 02 0C 02 <fid>``."""
    return CommandAPDU(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))


def create_file_command(fid: int, size: int) -> CommandAPDU:
    """CREATE FILE of the JMRTD applet: ``00 E0 00 00 06 63 04 <size:2> <fid:2>``."""
    return CommandAPDU(0x00, 0xE0, 0x00, 0x00,
                       b"\x63\x04" + size.to_bytes(2, "big") + fid.to_bytes(2, "big"))


def update_binary_command(offset: int, data: bytes) -> CommandAPDU:
    """UPDATE BINARY at a 15-bit offset (short or extended by the data length)."""
    if not 0 <= offset <= MAX_OFFSET:
        raise APDUError(f"UPDATE BINARY offset {offset} does not fit 15 bits")
    return CommandAPDU(0x00, 0xD6, offset >> 8, offset & 0xFF, data)


def bac_seed_command(document_number: str, date_of_birth: str, date_of_expiry: str) -> CommandAPDU:
    """PUT DATA 62 with the BAC seed; the document number padded to 9 with '<' (§1.5 pitfall)."""
    number = document_number.strip().upper().ljust(9, "<")
    for name, value in (("date of birth", date_of_birth), ("date of expiry", date_of_expiry)):
        # ICAO 9303-3 allows fillers in an MRZ date (cardline writes '<<<<<<' for no expiry).
        if len(value) != 6 or not all(c.isdigit() or c == "<" for c in value):
            raise APDUError(f"{name} must be YYMMDD or fillers")
    body = b"".join(tlv.encode(0x04, v.encode("ascii"))
                    for v in (number, date_of_birth, date_of_expiry))
    return CommandAPDU(0x00, 0xDA, 0x00, 0x62, tlv.encode(0x62, body))


def lock_command() -> CommandAPDU:
    """LOCK the applet for good: ``00 DA DE AD``."""
    return CommandAPDU(0x00, 0xDA, 0xDE, 0xAD)


def min_apdus(files: Mapping[int, bytes], chunk: int) -> int:
    """Fewest APDUs to personalize ``files`` at ``chunk`` bytes per UPDATE BINARY."""
    per_file = sum(2 + -(-len(data) // chunk) for data in files.values())
    return per_file + FIXED_APDUS


def parse_length_info(data: bytes) -> tuple[int, int]:
    """7F66 { 02 max command data, 02 max response data } → both as integers."""
    try:
        values = [obj.value for obj in tlv.decode_all(tlv.decode_single(data, 0x7F66).value)]
    except TLVError as exc:
        raise APDUError(f"extended length information malformed: {exc}") from exc
    if len(values) < 2 or not all(values[:2]):
        raise APDUError("extended length information needs two integers")
    return int.from_bytes(values[0], "big"), int.from_bytes(values[1], "big")


class PersoClient:
    """Sequences the perso commands over a transport, checking every status word."""

    def __init__(self, transport: Transport, chunk: int | None = None) -> None:
        self.transport = transport
        self.apdu_count = 0
        self._chunk = chunk

    def _send(self, name: str, command: CommandAPDU) -> bytes:
        self.apdu_count += 1
        return self.transport.transmit(command).check(name)

    def select_applet(self) -> None:
        """SELECT the eMRTD applet."""
        self._send("SELECT applet", select_applet_command())

    def max_chunk(self) -> int:
        """Bytes per UPDATE BINARY: min of the card's 7F66 and the transport (asked once)."""
        if self._chunk is None:
            info = self._send("GET DATA 7F66", CommandAPDU(0x00, 0xCA, 0x7F, 0x66, ne=256))
            card_limit = parse_length_info(info)[0]
            self._chunk = min(card_limit, self.transport.max_command_data)
        return self._chunk

    def create_file(self, fid: int, size: int) -> None:
        """CREATE FILE; the first creation fixes the size."""
        self._send(f"CREATE FILE {fid:04X}", create_file_command(fid, size))

    def write_file(self, fid: int, data: bytes) -> None:
        """SELECT the file and write it in the fewest UPDATE BINARY commands."""
        chunk = self.max_chunk()
        self._send(f"SELECT {fid:04X}", select_file_command(fid))
        for offset in range(0, len(data), chunk):
            command = update_binary_command(offset, data[offset : offset + chunk])
            self._send(f"UPDATE BINARY {fid:04X}@{offset}", command)

    def put_file(self, fid: int, data: bytes) -> None:
        """CREATE a file of exactly ``len(data)`` bytes and write it."""
        self.create_file(fid, len(data))
        self.write_file(fid, data)

    def generate_aa_key(self) -> bytes:
        """GENERATE ASYMMETRIC KEY PAIR on the chip; return the uncompressed public point."""
        template = self._send("GENERATE KEY", CommandAPDU(0x00, 0x46, 0x00, 0x00, ne=256))
        aa.decode_public_key_template(template)  # checks curve and point before trusting it
        return tlv.find(tlv.decode_single(template).value, aa.TAG_POINT)

    def put_bac_seed(self, document_number: str, date_of_birth: str, date_of_expiry: str) -> None:
        """PUT DATA 62: the chip derives its BAC keys from these three MRZ fields."""
        self._send("PUT DATA BAC seed",
                   bac_seed_command(document_number, date_of_birth, date_of_expiry))

    def lock(self) -> None:
        """LOCK: no write is possible afterwards."""
        self._send("LOCK", lock_command())
