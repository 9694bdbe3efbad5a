"""Figures for ``cardline bench``: rendering time, emulator time and bytes on the wire per card."""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from printers import protocol
from printers.driver import PrinterDriver
from printers.emulator import PRINTED_KEPT, PrinterEmulator
from printers.face import SIDES, CardFace, RenderedCard, render_card
from printers.layout import CardLayout
from printers.link import SerialLink
from printers.protocol import Command, CommandDecoder

PTY_READ = 4096  # what one read of a pseudo-terminal typically hands the emulator


def measure(face: CardFace, layout: CardLayout, cards: int) -> dict[str, float]:
    """Render ``cards`` cards, receive them on an emulator, then print one over a real pty.

    Consecutive cards are two holders taking turns (``face`` and ``other_holder(face)``), so
    nothing a printer or a renderer could reuse between two real cards is reused here. The
    layout's static drawing is made before timing, as a line makes it once per layout.
    """
    if cards < 1:
        raise ValueError("cards must be at least 1")
    holders = [face, other_holder(face)]
    jobs = [render_card(holder, layout) for holder in holders]
    start = time.perf_counter()
    for index in range(cards):
        rendered = render_card(holders[index % 2], layout)
        for side in SIDES:
            rendered.panels(side)
    render_ms = (time.perf_counter() - start) * 1000 / cards
    return {
        "render_ms_per_card": round(render_ms, 2),
        "emulator_ms_per_card": round(measure_emulator(jobs, cards), 2),
        "printer_bytes_per_card": float(_bytes_on_the_wire(jobs[0])),
    }


def other_holder(face: CardFace) -> CardFace:
    """A second holder for the same layout: every personal field, the portrait, the fingers
    and the CAN differ."""
    with Image.open(io.BytesIO(face.photo)) as image:
        portrait = ImageOps.flip(image.convert("RGB"))
    buffer = io.BytesIO()
    portrait.save(buffer, "PNG")
    return dataclasses.replace(
        face,
        personal_id=face.personal_id[::-1],
        full_name=" ".join(reversed(face.full_name.split())),
        place_of_origin=" ".join(reversed(face.place_of_origin.split())),
        place_of_residence=" ".join(reversed(face.place_of_residence.split())),
        identifying_marks=" ".join(reversed(face.identifying_marks.split())),
        mrz_lines=(face.mrz_lines[0][::-1], face.mrz_lines[1][::-1], face.mrz_lines[2][::-1]),
        photo=buffer.getvalue(),
        fingerprints={p: ImageOps.mirror(finger) for p, finger in face.fingerprints.items()},
        can=None if face.can is None else face.can[::-1],
    )


def measure_emulator(jobs: list[RenderedCard], cards: int) -> float:
    """Milliseconds an emulator with a state folder spends per card, the ``jobs`` taking turns.

    The host's bytes go through ``PrinterEmulator.receive`` in pty-sized reads: decoding,
    the printer's answers, the status file, composing each printed side and its PNG file.
    Timing starts once the emulator holds as many printed cards as it keeps, as on a line.
    """
    streams = [card_stream(job) for job in jobs]
    with tempfile.TemporaryDirectory(prefix="cardline-bench-") as folder:
        emulator = PrinterEmulator("bench", cards=PRINTED_KEPT + cards, state_dir=Path(folder))
        with emulator:
            decoder = CommandDecoder()
            for index in range(PRINTED_KEPT):
                _receive(emulator, decoder, streams[index % len(streams)])
            start = time.perf_counter()
            for index in range(cards):
                _receive(emulator, decoder, streams[index % len(streams)])
            elapsed = time.perf_counter() - start
    if emulator.machine.counts.output != PRINTED_KEPT + cards:
        raise RuntimeError("the emulator did not print and eject every card")
    return elapsed * 1000 / cards


def _receive(emulator: PrinterEmulator, decoder: CommandDecoder, stream: bytes) -> None:
    """Hand ``stream`` to the emulator in pty-sized reads."""
    for offset in range(0, len(stream), PTY_READ):
        emulator.receive(decoder, stream[offset : offset + PTY_READ], _discard)


def card_stream(rendered: RenderedCard) -> bytes:
    """The commands of one card from feeder to output hopper, as the driver frames them."""
    frames = [protocol.encode(c) for c in (Command.TO_CONTACTLESS, Command.INSERT)]
    frames.append(protocol.encode(Command.SEQUENCE_START))
    for side, select in zip(SIDES, (Command.FRONT, Command.BACK), strict=True):
        frames.append(protocol.encode(select))
        frames += [protocol.download(p.colour, p.levels, p.data) for p in rendered.panels(side)]
    frames += [protocol.encode(Command.SEQUENCE_END)] * 2  # end the job, then eject
    return b"".join(frames)


def _bytes_on_the_wire(rendered: RenderedCard) -> int:
    """Bytes the driver sends to print ``rendered`` on a zero-timing emulator over a pty."""
    with PrinterEmulator("bench", cards=1) as emulator:
        link = SerialLink(emulator.serve_pty())
        with PrinterDriver(link, "bench") as driver:
            before = link.bytes_sent
            driver.feed_to_encoder()
            driver.release_from_encoder()
            driver.print_card(rendered)
            driver.eject()
            return link.bytes_sent - before


def _discard(reply: bytes) -> None:
    """Replies of the measured emulator go nowhere."""
