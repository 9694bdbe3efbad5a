"""The Evolis escape-command protocol, pure: framing, the commands a line needs, every reply form.

Evolis Card Printers Programming Guide A5013 Rev E (EVO-PG) §3: a command is
``ESC command [; param]... CR``; bitmap data follows the last ``;`` of a ``Db`` command.
Replies are ASCII text ended by CR. No I/O here: bytes in, values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, StrEnum

from printers.errors import (
    CardJam,
    CommandRefused,
    CoverOpen,
    FeederEmpty,
    GarbledReply,
    HeadTooHot,
    PrinterFault,
    RejectBoxFull,
    RibbonOut,
)

ESC = 0x1B
CR = 0x0D
SEP = b";"
MAX_REPLY = 256

# EVO-PG `Db`: one panel is 1016 x 648 dots at 300 dpi.
PANEL_WIDTH = 1016
PANEL_HEIGHT = 648
ROW_BYTES = PANEL_WIDTH // 8
# EVO-PG `Db`: levels 2 (resin, overlay) or 32/64/128 (dye). Our payload is bit-planar:
# ceil(log2(levels)) planes of 1 bit per dot, most significant plane first, rows MSB-first.
LEVEL_PLANES = {2: 1, 32: 5, 64: 6, 128: 7}
PANEL_COLOURS = ("y", "m", "c", "k", "o")


class Command(StrEnum):
    """The escape commands a personalization line sends (EVO-PG §6-§20, Z390 field use)."""

    MODEL = "Rtp"
    FIRMWARE = "Rfv"
    SERIAL = "Rsn"
    ERROR_MODE = "Pem"  # Pem;2: the host manages errors
    NO_EJECT = "Pneab"  # Pneab;E: keep the card after a print sequence
    INSERT_MODE = "Pmi"  # Pmi;F: insert from the feeder
    LAST_REPLY = "Rlr"  # Rlr;p card position, Rlr;h reject box
    SENSOR = "Rse"  # Rse;f feeder, Rse;n feeder near empty, Rse;o cover
    RIBBON = "Rrt"  # Rrt;count remaining, Rrt;qty capacity
    COUNTERS = "Rco"  # Rco;c cards inserted, Rco;p panels printed
    CHIP_SERIAL = "Rcs"  # cardline extension: chip serial of the card at the station
    INSERT = "Si"  # insert, or move the card inside, to the print position
    TO_CONTACT = "Sis"
    TO_CONTACTLESS = "Sic"
    SEQUENCE_START = "Ss"
    FRONT = "Sr"
    BACK = "Sv"
    DOWNLOAD = "Db"
    SEQUENCE_END = "Se"  # ends the sequence; outside a sequence, ejects the card
    REJECT = "Ser"  # eject under the output hopper into the reject box


class Position(Enum):
    """Where the card inside the printer is, as ``Rlr;p`` answers (Z390)."""

    NONE = "NO CARD"
    PRINT = "CARD"
    CONTACT = "SMART CARD"
    CONTACTLESS = "CONTACTLESS CARD"


class Fault(StrEnum):
    """Error replies: the printer's text for each fault (libevolis minor states)."""

    COMMAND = "ERR CDE"
    PARAMETER = "ERR PARAM"
    BUSY = "ERR BUSY"
    NO_CARD = "ERR NO CARD"
    RIBBON = "ERR RIBBON ENDED"
    NO_RIBBON = "ERR RIB DETECTION"
    FEEDER = "ERR FEEDER EMPTY"
    COVER = "ERR COVER OPEN"
    MECHANICAL = "ERR MECHANICAL"
    REJECT_BOX = "ERR REJECT BOX FULL"
    HEAD_TEMP = "ERR HEAD TEMP"


FAULT_ERRORS: dict[Fault, type[PrinterFault]] = {
    Fault.COMMAND: CommandRefused,
    Fault.PARAMETER: CommandRefused,
    Fault.BUSY: CommandRefused,
    Fault.NO_CARD: CommandRefused,
    Fault.RIBBON: RibbonOut,
    Fault.NO_RIBBON: RibbonOut,
    Fault.FEEDER: FeederEmpty,
    Fault.COVER: CoverOpen,
    Fault.MECHANICAL: CardJam,
    Fault.REJECT_BOX: RejectBoxFull,
    Fault.HEAD_TEMP: HeadTooHot,
}

OK = "OK"
_PRINTABLE = re.compile(rf"[ -~]{{1,{MAX_REPLY}}}")
_VOLTS = re.compile(r"(\d+),(\d\d) Volts")


def panel_bytes(levels: int) -> int:
    """Size of one ``Db`` panel payload at ``levels`` grey levels."""
    if levels not in LEVEL_PLANES:
        raise ValueError(f"levels must be one of {sorted(LEVEL_PLANES)}")
    return LEVEL_PLANES[levels] * ROW_BYTES * PANEL_HEIGHT


def encode(command: str, *params: str, data: bytes = b"") -> bytes:
    """Frame one command: ESC, the fields joined by ``;``, then the bitmap data, then CR."""
    fields = [command, *params]
    if any(SEP.decode() in f or chr(CR) in f or chr(ESC) in f for f in fields):
        raise ValueError("a field may not contain ';', ESC or CR")
    head = SEP.join(f.encode("ascii") for f in fields)
    return bytes([ESC]) + head + (SEP + data if data else b"") + bytes([CR])


def download(colour: str, levels: int, data: bytes) -> bytes:
    """``Db;colour;levels;data``: one full panel bitmap (EVO-PG §D commands)."""
    if colour not in PANEL_COLOURS or len(data) != panel_bytes(levels):
        raise ValueError(f"bad panel {colour!r}/{levels}: {len(data)} bytes")
    return encode(Command.DOWNLOAD, colour, str(levels), data=data)


def encode_reply(text: str) -> bytes:
    """A reply as the printer sends it: ASCII text ended by CR."""
    return text.encode("ascii") + bytes([CR])


def decode_reply(raw: bytes) -> str:
    """Text of one CR-ended reply; anything else is a ``GarbledReply``."""
    body = raw[:-1] if raw.endswith(bytes([CR])) else raw
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise GarbledReply("", "reply is not ASCII text", raw) from exc
    if not raw.endswith(bytes([CR])) or not _PRINTABLE.fullmatch(text):
        raise GarbledReply("", "reply is not printable text ended by CR", raw)
    return text


def check(text: str) -> str:
    """Return ``text`` unless it is an error reply, which raises its typed fault."""
    if not text.startswith("ERR"):
        return text
    try:
        fault = Fault(text)
    except ValueError:
        # EVO-H evolis.h: any reply starting with "ERR" is an error; unknown ones are refusals.
        raise CommandRefused("", f"printer error {text!r}", text) from None
    raise FAULT_ERRORS[fault]("", f"printer reports {text!r}", text)


def parse_ok(text: str) -> None:
    """A command whose only good answer is ``OK``."""
    if check(text) != OK:
        raise GarbledReply("", f"expected OK, got {text!r}", text.encode())


def parse_position(text: str) -> Position:
    """``Rlr;p``: NO CARD, CARD, SMART CARD or CONTACTLESS CARD (``OK`` also means no card)."""
    text = check(text)
    if text == OK:
        return Position.NONE
    try:
        return Position(text)
    except ValueError:
        raise GarbledReply("", f"unknown card position {text!r}", text.encode()) from None


def parse_volts(text: str) -> float:
    """``Rse;x``: a sensor voltage written like ``5,00 Volts`` (Z390)."""
    match = _VOLTS.fullmatch(check(text))
    if match is None:
        raise GarbledReply("", f"not a sensor voltage: {text!r}", text.encode())
    return int(match[1]) + int(match[2]) / 100


def format_volts(volts: float) -> str:
    """The printer's way to write a sensor voltage."""
    hundredths = round(volts * 100)
    return f"{hundredths // 100},{hundredths % 100:02d} Volts"


def parse_count(text: str) -> int:
    """A counter reply: a decimal number."""
    text = check(text)
    if not text.isdigit() or len(text) > 9:
        raise GarbledReply("", f"not a count: {text!r}", text.encode())
    return int(text)


def parse_text(text: str) -> str:
    """A free-text reply (model, firmware, serial, chip serial)."""
    return check(text)


@dataclass(frozen=True)
class Frame:
    """One decoded command: its name, its text parameters and any bitmap data."""

    command: str
    params: tuple[str, ...]
    data: bytes = b""


BAD_FRAME = Frame("?", ())
_MAX_HEADER = 64
_CRS = re.compile(rb"\r+")


class CommandDecoder:
    """Incremental decoder of the host's byte stream into frames (the printer's side).

    A malformed command decodes as ``BAD_FRAME`` so the printer can answer ``ERR CDE``.
    Work is linear in the bytes received: they collect in one ``bytearray``, a decoded frame
    is cut from its front (``del`` there is O(1)), and a ``Db`` payload is copied out once.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._awaited = 0  # buffer length that completes the Db frame at its front (0: unknown)

    @property
    def pending(self) -> int:
        """Bytes of a command not yet complete."""
        return len(self._buffer)

    def abandon(self) -> int:
        """Drop an incomplete command (the firmware's receive time-out); returns its bytes."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._awaited = 0
        return dropped

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every command now complete."""
        self._buffer += data
        if len(self._buffer) < self._awaited:
            return []  # the middle of a bitmap: nothing to look at yet
        self._awaited = 0
        frames: list[Frame] = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    def _next(self) -> Frame | None:
        buffer = self._buffer
        crs = _CRS.match(buffer)
        if crs is not None:
            del buffer[: crs.end()]
        # EVO-PG §3: the start character is not compulsory after a CR.
        start = 1 if buffer[:1] == bytes([ESC]) else 0
        if len(buffer) <= start:
            return None
        if buffer.startswith(b"Db;", start):
            return self._download(start)
        end = buffer.find(CR, start)
        if end < 0:
            if len(buffer) - start > _MAX_HEADER * 4:
                buffer.clear()
                return BAD_FRAME
            return None
        head = bytes(buffer[start:end])
        del buffer[: end + 1]
        try:
            fields = head.decode("ascii").split(";")
        except UnicodeDecodeError:
            return BAD_FRAME
        return Frame(fields[0], tuple(fields[1:]))

    def _download(self, start: int) -> Frame | None:
        """``Db;colour;levels;data CR``, decoded once all of it is here."""
        buffer = self._buffer
        second = buffer.find(SEP, start + 3)
        third = buffer.find(SEP, second + 1) if second >= 0 else -1
        if third < 0:
            return None
        levels = bytes(buffer[second + 1 : third])
        try:
            size = panel_bytes(int(levels))
            colour = bytes(buffer[start + 3 : second]).decode("ascii")
        except ValueError:
            buffer.clear()
            return BAD_FRAME
        end = third + 1 + size
        if len(buffer) < end + 1:
            self._awaited = end + 1
            return None
        with memoryview(buffer) as view:
            data = bytes(view[third + 1 : end])
        ended = buffer[end] == CR
        del buffer[: end + 1]
        if not ended or colour not in PANEL_COLOURS:
            return BAD_FRAME
        return Frame("Db", (colour, levels.decode("ascii")), data)
