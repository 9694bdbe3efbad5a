"""Secure messaging of ICAO 9303-11 §9.8, written once for both ends.

The terminal wraps commands and unwraps responses; the card (the virtual eMRTD) unwraps
commands and wraps responses with the same object, as JMRTD's wrapper serves both sides.
"""

from __future__ import annotations

import hmac
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from applets.emrtd import crypto
from applets.emrtd.crypto import SMCipher
from applets.emrtd.errors import CryptoError, SMCheck, SMError
from applets.errors import TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import Transport

SM_CLA_BITS = 0x0C  # ISO 7816-4 §5.4.1: SM, command header authenticated
_DO_BODY = frozenset({0x85, 0x87, 0x97, 0x99})
# From this many MAC'd bytes on, the MAC is computed on a second core while the data is
# decrypted (OpenSSL runs without the GIL); below it a thread hand-over costs more than it saves.
PARALLEL_BYTES = 4096
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _mac_pool() -> ThreadPoolExecutor:
    global _pool  # one small pool per process, made on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sm-mac")
        return _pool


class SecureMessaging:
    """Session keys, send sequence counter and cipher suite of one SM session."""

    def __init__(
        self, ks_enc: bytes, ks_mac: bytes, ssc: int, suite: SMCipher = SMCipher.DES3
    ) -> None:
        self._ks_enc, self._ks_mac = ks_enc, ks_mac
        self.ssc = ssc
        self.suite = suite
        self._cipher = crypto.KeyedCBC(ks_enc, suite)  # keyed once for the whole session
        self._checksum = crypto.SessionMac(ks_mac, suite)

    @property
    def ks_enc(self) -> bytes:
        """The session's encryption key (fixed for the session's life)."""
        return self._ks_enc

    @property
    def ks_mac(self) -> bytes:
        """The session's MAC key (fixed for the session's life)."""
        return self._ks_mac

    @property
    def ssc_bytes(self) -> bytes:
        """The SSC as the MAC input carries it: 8 bytes for 3DES, 16 for AES."""
        return self.ssc.to_bytes(self.suite.block_size, "big")

    def _step(self) -> None:
        # ICAO 9303-11 §9.8.6.1: SSC increments before each command and each response
        self.ssc = (self.ssc + 1) % (1 << (8 * self.suite.block_size))

    def _iv(self) -> bytes:
        if self.suite is SMCipher.DES3:
            return bytes(8)  # ICAO 9303-11 §9.8.6.1: 3DES uses IV = 0
        return self._cipher.encrypt_block(self.ssc_bytes)  # §9.8.6.2: IV = E(KS_enc, SSC)

    def _encrypt(self, data: bytes) -> bytes:
        return self._cipher.encrypt(crypto.pad(data, self.suite.block_size), self._iv())

    def _decrypt(self, data: bytes) -> bytes:
        try:
            return crypto.unpad(self._cipher.decrypt(data, self._iv()))
        except CryptoError as exc:
            raise SMError(SMCheck.BAD_PADDING, str(exc)) from exc

    def _mac(self, message: bytes) -> bytes:
        # ICAO 9303-11 §9.8.6: MAC over pad(SSC ‖ message), ISO 9797-1 padding method 2
        return self._checksum.mac(crypto.pad(self.ssc_bytes + message, self.suite.block_size))

    def _data_object(self, data: bytes, odd_ins: bool) -> bytes:
        if not data:
            return b""
        if odd_ins:  # ICAO 9303-11 §9.8.5: odd INS carries BER-TLV data in DO85, no indicator
            return tlv.encode(0x85, self._encrypt(data))
        return tlv.encode(0x87, b"\x01" + self._encrypt(data))  # 01: padding indicator

    def _parse(self, data: bytes) -> tuple[dict[int, bytes], bytes]:
        """Split protected data into its DOs and the bytes the MAC covers."""
        found: dict[int, bytes] = {}
        try:
            for obj in tlv.iterate(data):
                if obj.tag == 0x8E:
                    if obj.end != len(data) or len(obj.value) != crypto.MAC_LENGTH:
                        raise SMError(SMCheck.MALFORMED_DO, "DO8E not last or not 8 bytes")
                    found[0x8E] = obj.value
                    return found, data[: obj.end - 2 - crypto.MAC_LENGTH]
                if obj.tag not in _DO_BODY or obj.tag in found:
                    raise SMError(SMCheck.MALFORMED_DO, f"unexpected DO {obj.tag:X}")
                found[obj.tag] = obj.value
        except TLVError as exc:
            raise SMError(SMCheck.MALFORMED_DO, str(exc)) from exc
        raise SMError(SMCheck.MISSING_DO, "DO8E missing")

    def _verify(self, message: bytes, mac: bytes) -> None:
        # ICAO 9303-11 §9.8.6: constant-time comparison of the cryptographic checksum
        if not hmac.compare_digest(self._mac(message), mac):
            raise SMError(SMCheck.BAD_MAC)

    def _verified_open(self, covered: bytes, dos: dict[int, bytes]) -> bytes:
        """Check the MAC, then open the data. A long body is decrypted while the MAC is being
        computed; nothing is returned, and no padding error reported, before the MAC holds."""
        if len(covered) < PARALLEL_BYTES:
            self._verify(covered, dos[0x8E])
            return self._open(dos)
        pending = _mac_pool().submit(self._mac, covered)
        try:
            opened: bytes | SMError = self._open(dos)
        except SMError as exc:
            opened = exc
        finally:
            mac = pending.result()  # always waited for: the MAC key's context is not shared
        if not hmac.compare_digest(mac, dos[0x8E]):
            raise SMError(SMCheck.BAD_MAC)
        if isinstance(opened, SMError):
            raise opened
        return opened

    def _open(self, dos: dict[int, bytes]) -> bytes:
        if 0x87 in dos:
            body = dos[0x87]
            if not body or body[0] != 0x01:
                raise SMError(SMCheck.MALFORMED_DO, "DO87 padding indicator is not 01")
            return self._decrypt(body[1:])
        return self._decrypt(dos[0x85]) if 0x85 in dos else b""

    def wrap_command(self, command: CommandAPDU) -> CommandAPDU:
        """Terminal side: protect a plain command (CLA 0C, DO87/85, DO97, DO8E)."""
        self._step()
        header = bytes((command.cla | SM_CLA_BITS, command.ins, command.p1, command.p2))
        body = self._data_object(command.data, bool(command.ins & 1))
        extended = command.needs_extended
        if command.ne is not None:
            size = 2 if extended else 1  # ICAO 9303-11 §9.8.5: DO97 of 2 bytes for extended Le
            body += tlv.encode(0x97, (command.ne % (256**size)).to_bytes(size, "big"))
        body += tlv.encode(0x8E, self._mac(crypto.pad(header, self.suite.block_size) + body))
        extended = extended or len(body) > 255
        return CommandAPDU(header[0], command.ins, command.p1, command.p2, body,
                           ne=65536 if extended else 256, extended=extended)

    def unwrap_command(self, command: CommandAPDU) -> CommandAPDU:
        """Card side: check and open a protected command; raise :class:`SMError` if wrong."""
        self._step()
        if command.cla & SM_CLA_BITS != SM_CLA_BITS:
            raise SMError(SMCheck.MISSING_DO, "plain command during a secure messaging session")
        dos, covered = self._parse(command.data)
        header = bytes((command.cla, command.ins, command.p1, command.p2))
        data = self._verified_open(crypto.pad(header, self.suite.block_size) + covered, dos)
        ne, extended = _le(dos.get(0x97)), len(dos.get(0x97, b"")) == 2
        return CommandAPDU(command.cla & ~SM_CLA_BITS & 0xFF, command.ins, command.p1,
                           command.p2, data, ne, extended=extended or len(data) > 255)

    def wrap_response(self, response: ResponseAPDU) -> ResponseAPDU:
        """Card side: protect a plain response (DO87, DO99, DO8E)."""
        self._step()
        body = self._data_object(response.data, odd_ins=False)
        body += tlv.encode(0x99, response.sw.to_bytes(2, "big"))
        body += tlv.encode(0x8E, self._mac(body))
        return ResponseAPDU(body, response.sw)

    def unwrap_response(self, response: ResponseAPDU) -> ResponseAPDU:
        """Terminal side: check and open a protected response; raise :class:`SMError` if wrong."""
        self._step()
        if not response.data:
            raise SMError(SMCheck.MISSING_DO, f"card answered {response.sw:04X} without SM",
                          sw=response.sw)
        dos, covered = self._parse(response.data)
        data = self._verified_open(covered, dos)
        status = dos.get(0x99)
        if status is not None and len(status) != 2:
            raise SMError(SMCheck.MALFORMED_DO, "DO99 is not 2 bytes")
        sw = int.from_bytes(status, "big") if status else response.sw  # DO99 is authenticated
        return ResponseAPDU(data, sw)


def _le(value: bytes | None) -> int | None:
    if value is None:
        return None
    if len(value) not in (1, 2):
        raise SMError(SMCheck.MALFORMED_DO, f"DO97 of {len(value)} bytes")
    return int.from_bytes(value, "big") or 256 ** len(value)


def wrapped_length(data_length: int, suite: SMCipher = SMCipher.DES3) -> int:
    """Size of the protected data field for a command with ``data_length`` bytes and an Le."""
    if data_length == 0:
        return 4 + 2 + crypto.MAC_LENGTH
    cipher = data_length + suite.block_size - data_length % suite.block_size
    do87 = cipher + 1  # padding indicator 01, then the cryptogram
    return 1 + len(tlv.encode_length(do87)) + do87 + 4 + 2 + crypto.MAC_LENGTH


@cache  # asked before each command a reader sends; the answer depends on these two alone
def max_plain_data(wrapped_max: int, suite: SMCipher = SMCipher.DES3) -> int:
    """The largest plain data field whose protected form fits ``wrapped_max`` bytes."""
    size = wrapped_max
    while size > 0 and wrapped_length(size, suite) > wrapped_max:
        size -= 1
    return size


class SecureTransport:
    """A :class:`Transport` that wraps every command and unwraps every response."""

    def __init__(self, transport: Transport, sm: SecureMessaging) -> None:
        self.transport = transport
        self.sm = sm

    @property
    def max_command_data(self) -> int:
        """Largest plain command data that still fits the inner path once protected."""
        return max_plain_data(self.transport.max_command_data, self.sm.suite)

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Wrap, send, unwrap."""
        return self.sm.unwrap_response(self.transport.transmit(self.sm.wrap_command(command)))
