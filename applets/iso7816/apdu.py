"""Command and response APDUs as ISO/IEC 7816-4 §5.1 defines them (short and extended length).

``CommandAPDU.ne`` is the number of response bytes expected: ``None`` for no Le
field, 1..256 for short Le (256 encoded as 00), 1..65536 for extended (65536 as 0000).
"""

from __future__ import annotations

from dataclasses import dataclass

from applets.errors import APDUError, StatusWordError

SHORT_MAX_LC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_NE = 65536


@dataclass(frozen=True, slots=True)
class CommandAPDU:
    """One command: header, optional data, optional expected length."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise APDUError(f"{name} out of range: {value}")
        if len(self.data) > EXTENDED_MAX_LC:
            raise APDUError(f"command data of {len(self.data)} bytes exceeds 65535")
        if self.ne is not None and not 1 <= self.ne <= EXTENDED_MAX_NE:
            raise APDUError(f"Ne {self.ne} out of range 1..65536")

    @property
    def needs_extended(self) -> bool:
        """True when the data or Ne do not fit the short form, or extended was asked for."""
        return (
            self.extended
            or len(self.data) > SHORT_MAX_LC
            or (self.ne is not None and self.ne > SHORT_MAX_NE)
        )

    def encode(self) -> bytes:
        """The bytes on the wire (ISO 7816-4 §5.1 cases 1, 2S/E, 3S/E, 4S/E)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if not self.needs_extended:
            body = b""
            if self.data:
                body += bytes((len(self.data),)) + self.data
            if self.ne is not None:
                body += bytes((self.ne & 0xFF,))
            return header + body
        body = b""
        if self.data:
            body += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if self.ne is not None:
            le = (self.ne & 0xFFFF).to_bytes(2, "big")
            body += le if self.data else b"\x00" + le
        return header + body

    @classmethod
    def decode(cls, raw: bytes) -> CommandAPDU:
        """Parse a command as a card receives it."""
        if len(raw) < 4:
            raise APDUError(f"command of {len(raw)} bytes is shorter than a header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, ne=body[0] or 256)
        if body[0] != 0:
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1:]))
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1 : 1 + lc]), body[-1] or 256)
            raise APDUError(f"short Lc {lc} does not match body of {len(body)} bytes")
        return cls._decode_extended(cla, ins, p1, p2, body)

    @classmethod
    def _decode_extended(cls, cla: int, ins: int, p1: int, p2: int, body: bytes) -> CommandAPDU:
        if len(body) == 3:
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:3], "big") or 65536,
                       extended=True)
        if len(body) < 3:
            raise APDUError("truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise APDUError("extended Lc of zero")
        if len(body) == 3 + lc:
            return cls(cla, ins, p1, p2, bytes(body[3:]), extended=True)
        if len(body) == 5 + lc:
            ne = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, bytes(body[3 : 3 + lc]), ne, extended=True)
        raise APDUError(f"extended Lc {lc} does not match body of {len(body)} bytes")


@dataclass(frozen=True, slots=True)
class ResponseAPDU:
    """A response: data field and the two status bytes as one integer."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        """First status byte."""
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        """Second status byte."""
        return self.sw & 0xFF

    def encode(self) -> bytes:
        """Data followed by SW1 SW2."""
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, raw: bytes) -> ResponseAPDU:
        """Split a response into data and status word."""
        if len(raw) < 2:
            raise APDUError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def check(self, command: str = "", expected: int = 0x9000) -> bytes:
        """Return the data, or raise :class:`StatusWordError` naming the command."""
        if self.sw != expected:
            from applets.iso7816.sw import describe

            raise StatusWordError(self.sw, command, describe(self.sw))
        return self.data
