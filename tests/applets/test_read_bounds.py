"""The reader's bounds against a chip that fights back: Le, GET RESPONSE rounds, file size, keys."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from applets.emrtd import aa, reader
from applets.emrtd.errors import AAError, FileStructureError, FileTooLargeError
from applets.emrtd.lds.dg15 import MAX_RSA_MODULUS_BITS, decode_dg15, rsa_key_problem
from applets.errors import APDUError, GetResponseLimitError, LDSError, ResponseTooLongError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.virtual import hostile


class Scripted:
    """A transport answering from a function of the command; it records every command sent."""

    max_command_data = 65535

    def __init__(self, answer) -> None:
        self.answer = answer
        self.sent: list[CommandAPDU] = []

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        self.sent.append(command)
        return self.answer(command)


def file_at(content: bytes):
    """READ BINARY answers from ``content`` (exactly Ne bytes while there are enough)."""
    def answer(command: CommandAPDU) -> ResponseAPDU:
        if command.ins == 0xA4:
            return ResponseAPDU(b"", 0x9000)
        offset = (command.p1 << 8) | command.p2
        data = content[offset : offset + (command.ne or 0)]
        return ResponseAPDU(data, 0x9000 if len(data) == command.ne else 0x6282)
    return answer


def test_response_exactly_at_le_is_data() -> None:
    """A READ BINARY answer of exactly Ne bytes is taken as data."""
    transport = Scripted(lambda c: ResponseAPDU(bytes(range(c.ne or 0)), 0x9000))
    assert reader.read_binary(transport, 0, 200) == bytes(range(200))


def test_response_beyond_le_is_refused() -> None:
    """One byte beyond Ne, or 64, is a ResponseTooLongError carrying both counts."""
    for extra in (1, hostile.EXTRA_BYTES):
        transport = Scripted(lambda c, extra=extra: ResponseAPDU(bytes((c.ne or 0) + extra),
                                                                 0x9000))
        with pytest.raises(ResponseTooLongError) as caught:
            reader.read_binary(transport, 0, 100)
        assert (caught.value.ne, caught.value.received) == (100, 100 + extra)


def test_data_without_an_le_field_is_too_long() -> None:
    """ISO 7816-4 §5.1: no Le field means Ne = 0, so any data answering SELECT is refused."""
    with pytest.raises(ResponseTooLongError):
        reader.select_file(Scripted(lambda c: ResponseAPDU(b"\x6f\x00", 0x9000)), 0x0101)


def test_get_response_rounds_are_capped() -> None:
    """A chip answering 61xx forever gets exactly MAX_GET_RESPONSE_ROUNDS GET RESPONSEs."""
    transport = Scripted(lambda c: ResponseAPDU(b"", 0x6110))
    with pytest.raises(GetResponseLimitError) as caught:
        reader.read_binary(transport, 0, 223)
    assert caught.value.rounds == reader.MAX_GET_RESPONSE_ROUNDS == 256
    assert len(transport.sent) == 1 + reader.MAX_GET_RESPONSE_ROUNDS
    assert all(c.ins == 0xC0 for c in transport.sent[1:])


def test_get_response_chain_up_to_ne_is_collected() -> None:
    """61xx remainders adding up to exactly Ne are data; one more byte is refused."""
    def chain(total: int):
        pending = bytearray(range(total))

        def answer(command: CommandAPDU) -> ResponseAPDU:
            piece = bytes(pending[:4])
            del pending[:4]
            return ResponseAPDU(piece, 0x6100 | len(pending) if pending else 0x9000)
        return answer

    assert reader.read_binary(Scripted(chain(12)), 0, 12) == bytes(range(12))
    with pytest.raises(ResponseTooLongError):
        reader.read_binary(Scripted(chain(13)), 0, 12)


def test_declared_size_over_the_cap_stops_before_reading_on() -> None:
    """A header declaring 4 GiB is refused after the header read, with no further READ BINARY."""
    huge = hostile.HugeFile(0x75)
    transport = Scripted(file_at(huge[0:4096]))
    with pytest.raises(FileTooLargeError) as caught:
        reader.read_file(transport, 0x0102)
    assert caught.value.declared == 6 + hostile.HUGE_LENGTH
    assert caught.value.cap == reader.DEFAULT_MAX_FILE_BYTES
    assert [c.ins for c in transport.sent] == [0xA4, 0xB0]


def test_file_at_the_cap_reads_whole() -> None:
    """A file exactly as large as max_bytes is read; one byte less of cap refuses it."""
    content = tlv.encode(0x75, bytes(i % 251 for i in range(5000)))
    assert reader.read_file(Scripted(file_at(content)), 0x0102, max_bytes=len(content)) == content
    with pytest.raises(FileTooLargeError):
        reader.read_file(Scripted(file_at(content)), 0x0102, max_bytes=len(content) - 1)


def test_big_file_is_read_in_linear_time() -> None:
    """A 32 kB file in 8-byte reads (4 000 pieces) takes well under a second (no quadratic +=)."""
    content = tlv.encode(0x75, bytes(32_000))
    started = time.perf_counter()
    assert reader.read_file(Scripted(file_at(content)), 0x0102, block=8) == content
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("content", [b"\xff" * 40, b"\x61\x80\x00\x00", b"\x61\x05\x01\x02"])
def test_file_that_is_no_tlv_or_ends_early(content: bytes) -> None:
    """Garbage, an indefinite length, a length past the end: FileStructureError (an APDUError)."""
    with pytest.raises(FileStructureError) as caught:
        reader.read_file(Scripted(file_at(content)), 0x0101)
    assert isinstance(caught.value, APDUError) and caught.value.fid == 0x0101


@pytest.mark.parametrize(("modulus", "exponent", "refused"), [
    ((1 << 4095) | 1, 65537, None),
    ((1 << 4096) | 1, 65537, "4097 bits exceeds 4096"),
    (hostile.RSA_32768_MODULUS, 65537, "32768 bits"),
    ((1 << 2047) | 1, 3, None),
    ((1 << 2047) | 1, 1, "exponent"),
    ((1 << 2047) | 1, 65536, "exponent"),
    ((1 << 2047) | 1, (1 << 2047) | 1, "exponent"),
    ((1 << 2047) | 1, (1 << 256) + 1, "exceeds 2^256"),
    ((1 << 2047) | 1, (1 << 256) - 1, None),
    (1 << 2047, 65537, "not an odd number"),
], ids=["4096-bit", "4097-bit", "32768-bit", "e=3", "e=1", "e-even", "e=n", "e-257-bit",
        "e-256-bit", "n-even"])
def test_rsa_key_bounds(modulus: int, exponent: int, refused: str | None) -> None:
    """n ≤ 4096 bits and odd; e odd, 3 ≤ e < n (RFC 8017 §3.1) and e < 2^256 (FIPS 186-5)."""
    problem = rsa_key_problem(modulus, exponent)
    assert problem is None if refused is None else refused in (problem or "")


def test_dg15_with_a_32768_bit_key_is_refused_at_decode() -> None:
    """DG15 holding a 32768-bit RSA key raises LDSError naming the bound, in milliseconds."""
    started = time.perf_counter()
    with pytest.raises(LDSError, match=f"exceeds {MAX_RSA_MODULUS_BITS}"):
        decode_dg15(hostile.rsa_32768_dg15())
    assert time.perf_counter() - started < 0.5


def test_dg15_with_an_unknown_algorithm_is_an_lds_error() -> None:
    """An algorithm OID asn1crypto does not know is an LDSError naming it, never a KeyError."""
    with pytest.raises(LDSError, match=hostile.UNKNOWN_OID):
        decode_dg15(hostile.unknown_oid_dg15())


def test_aa_refuses_an_oversized_key_before_computing() -> None:
    """verify_aa with a 32768-bit RSA key raises AAError at once, without s^e mod n."""
    key = rsa.RSAPublicNumbers(65537, hostile.RSA_32768_MODULUS).public_key()
    started = time.perf_counter()
    with pytest.raises(AAError, match="32768 bits"):
        aa.verify_aa(key, bytes(8), b"\x01" * 4096)
    assert time.perf_counter() - started < 0.5
