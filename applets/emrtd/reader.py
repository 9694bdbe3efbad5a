"""Terminal-side reading of an elementary file over any (secure) transport.

SELECT by FID, READ BINARY of the first bytes to learn the object's length
(``tlv.total_length``), then the rest in chunks. Copes with what ICAO BAC chips answer:
6Cxx (repeat with the exact Le), 61xx (GET RESPONSE), 6282 (end of file), and offsets
beyond 32767 through the odd-INS READ BINARY B1 with an offset DO54 (fact sheet §2.2).
"""

from __future__ import annotations

from applets.emrtd.errors import AccessDeniedError
from applets.errors import APDUError, StatusWordError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import EXTENDED_MAX_NE, SHORT_MAX_NE, CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW, describe
from applets.transport.base import Transport

SM_SHORT_BLOCK = 0xDF  # 223: a short response still fits 256 bytes after SM (JMRTD default)
EXTENDED_BLOCK = 0xFFC0  # leaves room for DO87/DO99/DO8E in a 65536-byte response
HEADER_READ = 6  # tag (≤2) + length (≤4): enough for any LDS1 file's outer TLV
MAX_EVEN_OFFSET = 0x7FFF
EOF_WARNING = 0x6282


def _check(response: ResponseAPDU, command: str) -> bytes:
    if response.sw in (SW.OK, EOF_WARNING):
        return response.data
    if response.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
        raise AccessDeniedError(response.sw, command, describe(response.sw))
    raise StatusWordError(response.sw, command, describe(response.sw))


def _read_command(offset: int, length: int, extended: bool) -> CommandAPDU:
    if offset <= MAX_EVEN_OFFSET:
        return CommandAPDU(0x00, 0xB0, offset >> 8, offset & 0xFF, ne=length,
                           extended=extended or length > SHORT_MAX_NE)
    size = max(1, (offset.bit_length() + 7) // 8)
    data = tlv.encode(0x54, offset.to_bytes(size, "big"))  # ISO 7816-4 §7.2.3: odd INS
    ne = length + 1 + len(tlv.encode_length(length))  # room for the DO53 header
    ne = min(ne, EXTENDED_MAX_NE if extended else SHORT_MAX_NE)
    return CommandAPDU(0x00, 0xB1, 0x00, 0x00, data, ne=ne, extended=extended)


def _exchange(transport: Transport, command: CommandAPDU) -> ResponseAPDU:
    """Send once, repeating with the exact Le on 6Cxx and collecting 61xx remainders."""
    response = transport.transmit(command)
    if response.sw1 == 0x6C:  # ISO 7816-4 §5.1.3: wrong Le, SW2 gives the exact length
        exact = CommandAPDU(command.cla, command.ins, command.p1, command.p2, command.data,
                            ne=response.sw2 or SHORT_MAX_NE)
        response = transport.transmit(exact)
    data = response.data
    while response.sw1 == 0x61:  # more bytes available: GET RESPONSE
        response = transport.transmit(CommandAPDU(0x00, 0xC0, 0x00, 0x00,
                                                  ne=response.sw2 or SHORT_MAX_NE))
        data += response.data
    return ResponseAPDU(data, response.sw)


def read_binary(transport: Transport, offset: int, length: int, extended: bool = False) -> bytes:
    """Read up to ``length`` bytes of the current EF at ``offset`` (B0, or B1 beyond 32767)."""
    command = _read_command(offset, length, extended)
    data = _check(_exchange(transport, command), f"READ BINARY @{offset}")
    if command.ins == 0xB1:
        try:
            data = tlv.decode_single(data, 0x53).value  # odd INS answers in DO53
        except TLVError as exc:
            raise APDUError(f"READ BINARY B1 answer is not a DO53: {exc}") from exc
    return data


def select_file(transport: Transport, fid: int) -> None:
    """SELECT EF by file identifier, no FCI."""
    command = CommandAPDU(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))
    _check(transport.transmit(command), f"SELECT {fid:04X}")


def read_file(
    transport: Transport, fid: int, block: int = SM_SHORT_BLOCK, extended: bool = False
) -> bytes:
    """SELECT and read a whole TLV-structured EF, ``block`` bytes per READ BINARY."""
    if not extended and not 1 <= block <= SHORT_MAX_NE:
        raise APDUError(f"block {block} needs extended length")
    select_file(transport, fid)
    content = read_binary(transport, 0, min(HEADER_READ, block), extended)
    try:
        total = tlv.total_length(content)
    except TLVError as exc:
        raise APDUError(f"EF {fid:04X} does not start with a TLV header: {exc}") from exc
    while len(content) < total:
        piece = read_binary(transport, len(content), min(block, total - len(content)), extended)
        if not piece:
            raise APDUError(f"EF {fid:04X} ended at {len(content)} of {total} bytes")
        content += piece
    return content[:total]
