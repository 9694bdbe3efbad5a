"""What the emulator leaves in its state folder: one exact PNG per printed side, a status file."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from printers import protocol
from printers.bench import other_holder
from printers.driver import PrinterDriver
from printers.emulator import PRINTED_KEPT, PrinterEmulator
from printers.face import SIDES, CardFace, render_card
from printers.layout import CardLayout
from printers.link import SerialLink
from printers.panels import compose
from printers.protocol import Command


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[tuple[PrinterEmulator, PrinterDriver]]:
    with (
        PrinterEmulator("st3", cards=PRINTED_KEPT + 3, state_dir=tmp_path) as emulator,
        PrinterDriver(SerialLink(emulator.serve_pty(), timeout=2), "st3") as driver,
    ):
        driver.set_host_error_mode()
        yield emulator, driver


def status(state: Path) -> dict[str, Any]:
    values: dict[str, Any] = json.loads((state / "st3.json").read_text(encoding="utf-8"))
    return values


def exchange(driver: PrinterDriver, frame: bytes) -> str:
    driver.link.write(frame)
    return protocol.decode_reply(driver.link.read_reply())


def test_each_printed_side_is_saved_exactly(
    printer: tuple[PrinterEmulator, PrinterDriver],
    face: CardFace,
    layout: CardLayout,
    tmp_path: Path,
) -> None:
    """Cards of two holders in turn: every PNG holds exactly the composition of its panels."""
    emulator, driver = printer
    cards = [render_card(holder, layout) for holder in (face, other_holder(face), face)]
    for rendered in cards:
        driver.feed_to_print()
        driver.print_card(rendered)
        driver.eject()
    assert status(tmp_path)["printed"] == 3 and status(tmp_path)["panels_printed"] == 30
    for index, (rendered, printed) in enumerate(zip(cards, emulator.printed, strict=True), 1):
        for side in SIDES:
            path = tmp_path / "st3" / "cards" / f"{index}-{printed.chip_serial}-{side}.png"
            with Image.open(path) as saved:
                assert saved.tobytes() == compose(rendered.panels(side)).tobytes(), (index, side)


def test_a_lone_panel_shows_in_the_status_once_idle(
    printer: tuple[PrinterEmulator, PrinterDriver],
    face: CardFace,
    layout: CardLayout,
    tmp_path: Path,
) -> None:
    """A panel count held back during a fast job reaches the status file when the line idles."""
    _, driver = printer
    driver.feed_to_print()
    panel = render_card(face, layout).panels("front")[0]
    assert exchange(driver, protocol.encode(Command.SEQUENCE_START)) == protocol.OK
    assert exchange(driver, protocol.encode(Command.FRONT)) == protocol.OK
    assert exchange(driver, protocol.download(panel.colour, panel.levels, panel.data)) == "OK"
    deadline = time.monotonic() + 5
    while status(tmp_path)["panels_printed"] != 1:
        assert time.monotonic() < deadline, "the panel count never reached the status file"
        time.sleep(0.02)


def test_the_emulator_keeps_only_the_last_cards(
    printer: tuple[PrinterEmulator, PrinterDriver], face: CardFace, layout: CardLayout
) -> None:
    """Printed cards beyond PRINTED_KEPT leave memory (a shift prints thousands of 2.8 MB jobs)."""
    emulator, driver = printer
    rendered = render_card(face, layout)
    for _ in range(PRINTED_KEPT + 2):
        driver.feed_to_print()
        driver.print_card(rendered)
        driver.eject()
    assert len(emulator.printed) == PRINTED_KEPT
    assert emulator.printed[-1].index == PRINTED_KEPT + 2


def test_only_the_last_faces_stay_on_disk_owner_only(
    tmp_path: Path, face: CardFace, layout: CardLayout
) -> None:
    """With faces_kept=2, after four cards only the last two cards' PNGs are left, each 0600
    in a 0700 folder (a face shows the holder's portrait and data); the default keeps 8."""
    assert PrinterEmulator("x").faces_kept == 8
    rendered = render_card(face, layout)
    with (
        PrinterEmulator("st5", cards=4, state_dir=tmp_path, faces_kept=2) as emulator,
        PrinterDriver(SerialLink(emulator.serve_pty(), timeout=2), "st5") as driver,
    ):
        driver.set_host_error_mode()
        for _ in range(4):
            driver.feed_to_print()
            driver.print_card(rendered)
            driver.eject()
    folder = tmp_path / "st5" / "cards"
    files = sorted(folder.glob("*.png"))
    assert [f.name.split("-")[0] for f in files] == ["3", "3", "4", "4"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_host_that_dies_mid_bitmap_does_not_wedge_the_printer(tmp_path: Path) -> None:
    """Half a panel download, then silence (the controller was killed): after the receive
    time-out the emulator drops the partial command and answers the next host normally."""
    from printers.emulator import RECEIVE_TIMEOUT_S

    with PrinterEmulator("st4", state_dir=tmp_path) as emulator:
        port = emulator.serve_pty()
        frame = protocol.download("k", 2, bytes(protocol.panel_bytes(2)))
        with SerialLink(port, timeout=2) as link:
            link.write(frame[: len(frame) // 2])
        time.sleep(RECEIVE_TIMEOUT_S + 0.3)
        with PrinterDriver(SerialLink(port, timeout=2), "st4") as driver:
            assert driver.info().model  # answered: the half bitmap was dropped
