"""Figures for ``cardline bench``: rendering time and bytes on the wire per card."""

from __future__ import annotations

import time

from printers.driver import PrinterDriver
from printers.emulator import PrinterEmulator
from printers.face import CardFace, render_card
from printers.layout import CardLayout
from printers.link import SerialLink


def measure(face: CardFace, layout: CardLayout, cards: int) -> dict[str, float]:
    """Render ``cards`` cards, then print one on a zero-timing emulator over a real pty."""
    if cards < 1:
        raise ValueError("cards must be at least 1")
    start = time.perf_counter()
    for _ in range(cards):
        rendered = render_card(face, layout)
        for side in ("front", "back"):
            rendered.panels(side)
    render_ms = (time.perf_counter() - start) * 1000 / cards
    with PrinterEmulator("bench", cards=1) as emulator:
        link = SerialLink(emulator.serve_pty())
        with PrinterDriver(link, "bench") as driver:
            before = link.bytes_sent
            driver.feed_to_encoder()
            driver.release_from_encoder()
            driver.print_card(rendered)
            driver.eject()
            sent = link.bytes_sent - before
    return {"render_ms_per_card": round(render_ms, 2), "printer_bytes_per_card": float(sent)}
