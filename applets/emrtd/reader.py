"""Terminal-side reading of an elementary file over any (secure) transport.

SELECT by FID, READ BINARY of the first bytes to learn the object's length
(``tlv.total_length``), then the rest in chunks. Copes with what ICAO BAC chips answer:
6Cxx (repeat with the exact Le), 61xx (GET RESPONSE), 6282 (end of file), and offsets
beyond 32767 through the odd-INS READ BINARY B1 with an offset DO54 (fact sheet §2.2).

Every read is bounded against a chip that fights back: a response longer than its Le is
refused, GET RESPONSE rounds are capped, and a file's declared size is capped per read.
"""

from __future__ import annotations

from applets.emrtd.errors import AccessDeniedError, FileStructureError, FileTooLargeError
from applets.errors import (
    APDUError,
    GetResponseLimitError,
    ResponseTooLongError,
    StatusWordError,
    TLVError,
)
from applets.iso7816 import tlv
from applets.iso7816.apdu import EXTENDED_MAX_NE, SHORT_MAX_NE, CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW, describe
from applets.transport.base import Transport

SM_SHORT_BLOCK = 0xDF  # 223: a short response still fits 256 bytes after SM (JMRTD default)
EXTENDED_BLOCK = 0xFFC0  # leaves room for DO87/DO99/DO8E in a 65536-byte response
HEADER_READ = 6  # tag (≤2) + length (≤4): enough for any LDS1 file's outer TLV
MAX_EVEN_OFFSET = 0x7FFF
EOF_WARNING = 0x6282
# GET RESPONSE hands out at most 256 bytes a round (61 00), so the largest response (extended
# Ne, 65536 bytes) takes 256 rounds in full pieces; a chip asking for more is not honest.
MAX_GET_RESPONSE_ROUNDS = EXTENDED_MAX_NE // SHORT_MAX_NE
DEFAULT_MAX_FILE_BYTES = 0x10000  # 64 KiB: a whole file, header included, unless told otherwise


def check_length(command: CommandAPDU, response: ResponseAPDU, name: str = "") -> ResponseAPDU:
    """ISO 7816-4 §5.1: at most Ne bytes of response data (none when the Le field is absent)."""
    limit = command.ne or 0
    if len(response.data) > limit:
        raise ResponseTooLongError(name or f"INS {command.ins:02X}", limit, len(response.data))
    return response


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


def _transmit(transport: Transport, command: CommandAPDU, name: str) -> ResponseAPDU:
    return check_length(command, transport.transmit(command), name)


def _exchange(transport: Transport, command: CommandAPDU, name: str = "") -> ResponseAPDU:
    """Send once, repeating with the exact Le on 6Cxx and collecting 61xx remainders.

    Each response is held to its own Le and the collected data to the command's Ne; after
    :data:`MAX_GET_RESPONSE_ROUNDS` rounds of 61xx the exchange gives up.
    """
    response = _transmit(transport, command, name)
    if response.sw1 == 0x6C:  # ISO 7816-4 §5.1.3: wrong Le, SW2 gives the exact length
        command = CommandAPDU(command.cla, command.ins, command.p1, command.p2, command.data,
                              ne=response.sw2 or SHORT_MAX_NE)
        response = _transmit(transport, command, name)
    data = bytearray(response.data)
    rounds = 0
    while response.sw1 == 0x61:  # more bytes available: GET RESPONSE (ISO 7816-4 §7.6.1)
        if rounds == MAX_GET_RESPONSE_ROUNDS:
            raise GetResponseLimitError(name, rounds)
        rounds += 1
        more = CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=response.sw2 or SHORT_MAX_NE)
        response = _transmit(transport, more, f"{name} GET RESPONSE".strip())
        data += response.data
        if len(data) > (command.ne or 0):
            raise ResponseTooLongError(name, command.ne or 0, len(data))
    return ResponseAPDU(bytes(data), response.sw)


def read_binary(transport: Transport, offset: int, length: int, extended: bool = False) -> bytes:
    """Read up to ``length`` bytes of the current EF at ``offset`` (B0, or B1 beyond 32767)."""
    command = _read_command(offset, length, extended)
    name = f"READ BINARY @{offset}"
    data = _check(_exchange(transport, command, name), name)
    if command.ins == 0xB1:
        try:
            data = tlv.decode_single(data, 0x53).value  # odd INS answers in DO53
        except TLVError as exc:
            raise APDUError(f"READ BINARY B1 answer is not a DO53: {exc}") from exc
    return data


def select_file(transport: Transport, fid: int) -> None:
    """SELECT EF by file identifier, no FCI."""
    command = CommandAPDU(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))
    name = f"SELECT {fid:04X}"
    _check(_transmit(transport, command, name), name)


def read_to_end(transport: Transport, fid: int, first: bytes, block: int, extended: bool,
                max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The whole TLV object whose first bytes are ``first``, reading the rest ``block`` bytes at
    a time; refused before any further read when its header declares more than ``max_bytes``."""
    try:
        total = tlv.total_length(first)
    except TLVError as exc:
        raise FileStructureError(fid, f"does not start with a TLV header: {exc}") from exc
    if total > max_bytes:
        raise FileTooLargeError(fid, total, max_bytes)
    content = bytearray(first)
    while len(content) < total:
        piece = read_binary(transport, len(content), min(block, total - len(content)), extended)
        if not piece:
            raise FileStructureError(fid, f"ended at {len(content)} of {total} declared bytes")
        content += piece
    return bytes(content[:total])


def read_file(
    transport: Transport, fid: int, block: int = SM_SHORT_BLOCK, extended: bool = False,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> bytes:
    """SELECT and read a whole TLV-structured EF, ``block`` bytes per READ BINARY."""
    if not extended and not 1 <= block <= SHORT_MAX_NE:
        raise APDUError(f"block {block} needs extended length")
    select_file(transport, fid)
    first = read_binary(transport, 0, min(HEADER_READ, block), extended)
    return read_to_end(transport, fid, first, block, extended, max_bytes)
