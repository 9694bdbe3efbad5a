"""The personalization command profile (terminal side): JMRTD passport-applet baseline + cardline.

JMRTD perso profile (fact sheet §1.2): SELECT applet, CREATE FILE ``63 04 size fid``, SELECT
EF, UPDATE BINARY, PUT DATA 62 (BAC seed), LOCK (PUT DATA DEAD). cardline adds GET DATA 7F66
(ISO 7816-4 §12.7.1 extended length information) to pick the chunk size and ISO 7816-8
GENERATE ASYMMETRIC KEY PAIR for the on-chip Active Authentication key.

For EAC chips cardline adds (all refused once the chip is locked):

- SELECT MF ``00 A4 00 0C 02 3F00``, then CREATE / SELECT / UPDATE of EF.CardAccess (011C)
  in the master file (perso only: a reader selects 011C directly, never the MF);
- PUT DATA ``00 DA 00 tag {tag L value}``: ``64`` PACE MRZ password K = SHA-1(MRZ
  information) (ICAO 9303-11 §9.7.3), ``65`` CAN digits, ``66`` access protocols (one byte,
  :class:`AccessProtocols`), ``67`` the trust point (the CVCA's CV certificate ``7F21 …``),
  ``68`` the chip's current date (YYMMDD, one digit per byte); sent with command chaining
  (CLA 10) when longer than the chunk;
- GENERATE ASYMMETRIC KEY PAIR ``00 46 00 01 {06 curve OID} 00`` for the Chip
  Authentication key, answered ``7F49 {06 curve OID, 86 point}`` for DG14.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from applets.emrtd import aa, curves, cvc, pace
from applets.emrtd.lds.asn1 import decode_oid, oid
from applets.emrtd.lds.files import EF_CARD_ACCESS, LDS1_AID
from applets.emrtd.pace import CHAINING
from applets.errors import APDUError, CardError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU
from applets.transport.base import Transport
from common.curves import Curve

MAX_OFFSET = 0x7FFF  # UPDATE BINARY B0/D6: P1P2 offset is 15 bits (ISO 7816-4 §7.2.2)
FIXED_APDUS = 4  # select applet, generate key, PUT DATA 62, LOCK
# An EAC chip adds: PUT DATA 66 (access protocols), GENERATE CA KEY, SELECT MF and SELECT
# applet again around EF.CardAccess, PUT DATA 64 (PACE MRZ), 65 (CAN), 68 (chip date); the
# trust point (PUT DATA 67) and EF.CardAccess count by their length.
EAC_FIXED_APDUS = 7
MASTER_FILE = b"\x3f\x00"
TAG_PACE_MRZ = 0x64
TAG_CAN = 0x65
TAG_ACCESS = 0x66
TAG_TRUST_POINT = 0x67
TAG_CHIP_DATE = 0x68
CA_KEY_REFERENCE = 0x01  # GENERATE ASYMMETRIC KEY PAIR P2 of the Chip Authentication key


class AccessProtocols(StrEnum):
    """Which access control a locked chip accepts (PUT DATA 66: 01, 02, 03)."""

    BAC = "bac"  # a BAC-only passport chip: what cardline made before EAC
    PACE = "pace"  # BAC refused
    PACE_BAC = "pace+bac"  # for readers that know only BAC

    @property
    def code(self) -> int:
        """The byte PUT DATA 66 carries."""
        return {"bac": 0x01, "pace": 0x02, "pace+bac": 0x03}[self.value]

    @classmethod
    def from_code(cls, code: int) -> AccessProtocols:
        """The protocols of a PUT DATA 66 byte (ValueError when unknown)."""
        for protocols in cls:
            if protocols.code == code:
                return protocols
        raise ValueError(f"access protocols code {code:02X}")

    @property
    def bac(self) -> bool:
        """True when Basic Access Control is accepted."""
        return self is not AccessProtocols.PACE

    @property
    def pace(self) -> bool:
        """True when PACE is accepted."""
        return self is not AccessProtocols.BAC


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


def select_master_file_command() -> CommandAPDU:
    """SELECT the master file (perso only): ``00 A4 00 0C 02 3F00``."""
    return CommandAPDU(0x00, 0xA4, 0x00, 0x0C, MASTER_FILE)


def put_data_command(tag: int, value: bytes) -> CommandAPDU:
    """PUT DATA of one cardline EAC tag: ``00 DA 00 tag {tag L value}``."""
    return CommandAPDU(0x00, 0xDA, 0x00, tag, tlv.encode(tag, value))


def pace_mrz_command(document_number: str, date_of_birth: str,
                     date_of_expiry: str) -> CommandAPDU:
    """PUT DATA 64: the PACE MRZ password K = SHA-1(MRZ information)."""
    secret = pace.mrz_password(document_number, date_of_birth, date_of_expiry).secret
    return put_data_command(TAG_PACE_MRZ, secret)


def can_command(can: str) -> CommandAPDU:
    """PUT DATA 65: the CAN, 4 to 12 decimal digits."""
    if not 4 <= len(can) <= 12 or not can.isdigit():
        raise APDUError("a CAN is 4 to 12 decimal digits")
    return put_data_command(TAG_CAN, can.encode("latin-1"))


def access_protocols_command(protocols: AccessProtocols) -> CommandAPDU:
    """PUT DATA 66: which access control the locked chip accepts."""
    return put_data_command(TAG_ACCESS, bytes((protocols.code,)))


def trust_point_command(cvca: cvc.CVCertificate) -> CommandAPDU:
    """PUT DATA 67: the CVCA certificate the chip trusts for Terminal Authentication."""
    return put_data_command(TAG_TRUST_POINT, cvca.encode())


def chip_date_command(day: date) -> CommandAPDU:
    """PUT DATA 68: the chip's current date, as a CV certificate writes dates."""
    return put_data_command(TAG_CHIP_DATE, cvc.encode_date(day))


def generate_ca_key_command(curve: Curve) -> CommandAPDU:
    """GENERATE ASYMMETRIC KEY PAIR of the CA key: ``00 46 00 01 {06 curve OID} 00``."""
    return CommandAPDU(0x00, 0x46, 0x00, CA_KEY_REFERENCE, oid(curve.oid), ne=256)


def decode_key_template(data: bytes) -> tuple[Curve, bytes]:
    """``7F49 {06 curve OID, 86 point}`` → the curve and the uncompressed point."""
    try:
        body = tlv.decode_single(data, aa.TAG_PUBLIC_KEY).value
        curve = curves.by_oid(decode_oid(tlv.find(body, aa.TAG_OID), "public key template"))
        point = tlv.find(body, aa.TAG_POINT)
        cvc.public_key(curve, point)  # on the curve, uncompressed
    except (CardError, KeyError) as exc:
        raise APDUError(f"public key template malformed: {exc}") from exc
    return curve, point


def chained(command: CommandAPDU, chunk: int) -> list[CommandAPDU]:
    """ISO 7816-4 §5.1.1.1: the command split into parts of at most ``chunk`` bytes, every
    part but the last with CLA 10."""
    data = command.data
    parts = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    return [CommandAPDU(command.cla | (CHAINING if i < len(parts) - 1 else 0), command.ins,
                        command.p1, command.p2, part, command.ne if i == len(parts) - 1 else None)
            for i, part in enumerate(parts)]


def lock_command() -> CommandAPDU:
    """LOCK the applet for good: ``00 DA DE AD``."""
    return CommandAPDU(0x00, 0xDA, 0xDE, 0xAD)


@dataclass(frozen=True, slots=True)
class EACPerso:
    """What an EAC chip gets beyond the application's files, as :func:`min_apdus` counts it."""

    card_access: bytes
    trust_point: cvc.CVCertificate
    bac: bool  # False: BAC refused, so no PUT DATA 62
    active_authentication: bool = True  # False: no AA key generated


def _file_apdus(data: bytes, chunk: int) -> int:
    """CREATE, SELECT and the UPDATE BINARY commands of one file."""
    return 2 + -(-len(data) // chunk)


def min_apdus(files: Mapping[int, bytes], chunk: int, eac: EACPerso | None = None) -> int:
    """Fewest APDUs to personalize ``files`` (in the application) at ``chunk`` bytes per
    command, and for an EAC chip its EF.CardAccess, trust point and secrets too."""
    per_file = sum(_file_apdus(data, chunk) for data in files.values())
    if eac is None:
        return per_file + FIXED_APDUS
    fixed = FIXED_APDUS + EAC_FIXED_APDUS - (not eac.bac) - (not eac.active_authentication)
    trust_point = len(chained(trust_point_command(eac.trust_point), chunk))
    return per_file + fixed + _file_apdus(eac.card_access, chunk) + trust_point


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

    def _send_chained(self, name: str, command: CommandAPDU) -> bytes:
        answer = b""
        for part in chained(command, self.max_chunk()):
            answer = self._send(name, part)
        return answer

    def put_card_access(self, data: bytes) -> None:
        """EF.CardAccess in the master file (SELECT MF, CREATE, write), then back into the
        application."""
        self.max_chunk()  # asked of the application, before leaving it
        self._send("SELECT MF", select_master_file_command())
        self.put_file(EF_CARD_ACCESS.fid, data)
        self.select_applet()

    def put_pace_mrz(self, document_number: str, date_of_birth: str,
                     date_of_expiry: str) -> None:
        """PUT DATA 64: the chip's PACE MRZ password."""
        self._send("PUT DATA PACE MRZ",
                   pace_mrz_command(document_number, date_of_birth, date_of_expiry))

    def put_can(self, can: str) -> None:
        """PUT DATA 65: the chip's CAN."""
        self._send("PUT DATA CAN", can_command(can))

    def set_access_protocols(self, protocols: AccessProtocols) -> None:
        """PUT DATA 66: BAC, PACE, or PACE and BAC."""
        self._send("PUT DATA access protocols", access_protocols_command(protocols))

    def put_trust_point(self, cvca: cvc.CVCertificate) -> None:
        """PUT DATA 67: the CVCA certificate (chained when longer than a chunk)."""
        self._send_chained("PUT DATA trust point", trust_point_command(cvca))

    def put_chip_date(self, day: date) -> None:
        """PUT DATA 68: the chip's current date for certificate validity."""
        self._send("PUT DATA chip date", chip_date_command(day))

    def generate_ca_key(self, curve: Curve) -> bytes:
        """Generate the Chip Authentication key on the chip; the uncompressed public point."""
        template = self._send("GENERATE CA KEY", generate_ca_key_command(curve))
        answered, point = decode_key_template(template)
        if answered != curve:
            raise APDUError(f"CA key generated on {answered.label}, not {curve.label}")
        return point
