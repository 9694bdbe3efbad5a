"""The escape protocol: framing, the command decoder, reply parsing and error replies."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printers import protocol
from printers.errors import (
    CardJam,
    CommandRefused,
    CoverOpen,
    FeederEmpty,
    GarbledReply,
    HeadTooHot,
    RejectBoxFull,
    RibbonOut,
)
from printers.protocol import CommandDecoder, Position

FIELD = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=";"),
    min_size=1,
    max_size=12,
)


def test_frame_layout_follows_the_guide() -> None:
    """EVO-PG §3: ESC, fields separated by ';', CR."""
    assert protocol.encode("Pem", "2") == b"\x1bPem;2\r"


@given(FIELD, st.lists(FIELD, max_size=4))
def test_encode_decode_round_trip(command: str, params: list[str]) -> None:
    """Every text command decodes to what was encoded."""
    frames = CommandDecoder().feed(protocol.encode(command, *params))
    assert [(f.command, f.params) for f in frames] == [(command, tuple(params))]


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 997))
def test_bitmap_with_control_bytes_survives_chunking(pattern: bytes, chunk: int) -> None:
    """A Db payload holding CR, ESC and ';' decodes whole, however the bytes arrive."""
    size = protocol.panel_bytes(2)
    data = ((b"\r\x1b;" + pattern) * (size // 3 + 1))[:size]
    stream = protocol.download("k", 2, data) + protocol.encode("Se")
    decoder, frames = CommandDecoder(), []
    for start in range(0, len(stream), chunk * 97):
        frames += decoder.feed(stream[start : start + chunk * 97])
    assert [(f.command, f.params, f.data) for f in frames] == [
        ("Db", ("k", "2"), data),
        ("Se", (), b""),
    ]


def test_start_character_is_optional_after_cr() -> None:
    """EVO-PG §3: a command right after a CR needs no ESC."""
    frames = CommandDecoder().feed(b"\x1bSs\rSr\r")
    assert [f.command for f in frames] == ["Ss", "Sr"]


def test_bad_bitmap_header_is_a_bad_frame() -> None:
    """A Db with an unknown level count decodes as BAD_FRAME (the printer answers ERR CDE)."""
    assert CommandDecoder().feed(b"\x1bDb;k;3;xx\r") == [protocol.BAD_FRAME]


def test_encode_refuses_separators_inside_fields() -> None:
    """A field cannot smuggle a separator or terminator."""
    with pytest.raises(ValueError):
        protocol.encode("Pem", "2;3")
    with pytest.raises(ValueError):
        protocol.download("k", 2, b"short")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("ERR RIBBON ENDED", RibbonOut),
        ("ERR RIB DETECTION", RibbonOut),
        ("ERR FEEDER EMPTY", FeederEmpty),
        ("ERR COVER OPEN", CoverOpen),
        ("ERR MECHANICAL", CardJam),
        ("ERR REJECT BOX FULL", RejectBoxFull),
        ("ERR HEAD TEMP", HeadTooHot),
        ("ERR CDE", CommandRefused),
        ("ERR SOMETHING NEW", CommandRefused),
    ],
)
def test_error_replies_map_to_typed_faults(reply: str, error: type[Exception]) -> None:
    """Each error reply raises its own exception, keeping the printer's text."""
    with pytest.raises(error) as caught:
        protocol.check(reply)
    assert caught.value.reply == reply  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", [b"OK", b"\xff\xfe\r", b"O\x00K\r", b"\r"])
def test_garbled_replies(raw: bytes) -> None:
    """A reply must be printable ASCII ended by CR."""
    with pytest.raises(GarbledReply):
        protocol.decode_reply(raw)


def test_reply_forms() -> None:
    """Position words, voltages and counters parse; nonsense is GarbledReply."""
    assert protocol.parse_position("CONTACTLESS CARD") is Position.CONTACTLESS
    assert protocol.parse_position("OK") is Position.NONE
    assert protocol.parse_volts("5,00 Volts") == 5.0
    assert protocol.parse_count("123") == 123
    for parse, text in [
        (protocol.parse_position, "SOMEWHERE"),
        (protocol.parse_volts, "5.00 V"),
        (protocol.parse_count, "-1"),
        (protocol.parse_ok, "NO"),
    ]:
        with pytest.raises(GarbledReply):
            parse(text)


@given(st.floats(0, 99.99))
def test_voltage_round_trip(volts: float) -> None:
    """format_volts and parse_volts agree to the hundredth."""
    assert abs(protocol.parse_volts(protocol.format_volts(volts)) - volts) <= 0.005 + 1e-9


PANEL = (b"\r\x1b;Db;k;2;" * 10_000)[: protocol.panel_bytes(2)]
PIECES = st.one_of(
    st.builds(
        lambda command, params: protocol.encode(command, *params),
        FIELD.filter(lambda f: not f.startswith("Db")),
        st.lists(FIELD, max_size=3),
    ),
    st.sampled_from(protocol.PANEL_COLOURS).map(lambda c: protocol.download(c, 2, PANEL)),
    st.just(b"\r\r"),
    st.just(b"Sv\r"),  # EVO-PG §3: no ESC needed after a CR
)


@settings(max_examples=40, deadline=None)
@given(st.lists(PIECES, max_size=6), st.lists(st.integers(1, 30_000), min_size=1, max_size=6))
def test_decoding_does_not_depend_on_how_bytes_arrive(pieces: list[bytes], cuts: list[int]) -> None:
    """A well-formed stream gives the same frames whole or cut anywhere, one per command."""
    stream = b"".join(pieces)
    whole = CommandDecoder().feed(stream)
    assert len(whole) == sum(piece != b"\r\r" for piece in pieces)
    assert protocol.BAD_FRAME not in whole
    decoder, frames, start = CommandDecoder(), [], 0
    for cut in itertools.cycle(cuts):
        if start >= len(stream):
            break
        frames += decoder.feed(stream[start : start + cut])
        start += cut
    assert frames == whole
