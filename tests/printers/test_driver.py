"""The driver against the emulator over a real pty and a real TCP socket: moves, faults."""

from __future__ import annotations

from typing import Any

import pytest

from printers.driver import FeederState, PrinterDriver
from printers.emulator import PrinterEmulator
from printers.errors import (
    CardJam,
    CommandRefused,
    CoverOpen,
    FeederEmpty,
    GarbledReply,
    HeadTooHot,
    PrinterOffline,
    RejectBoxFull,
    RibbonOut,
)
from printers.face import CardFace, render_card
from printers.layout import CardLayout
from printers.protocol import Position


def balanced(emulator: PrinterEmulator) -> dict[str, Any]:
    snap: dict[str, Any] = emulator.snapshot()
    assert snap["fed"] == snap["output_hopper"] + snap["reject_box"] + snap["in_machine"]
    return snap


def test_info_names_the_printer(driver: PrinterDriver) -> None:
    """info() reads model, firmware and serial."""
    info = driver.info()
    assert "Evolis" in info.model and info.firmware and info.serial == "EMU-ST1"


def test_feed_puts_the_chip_at_the_station(
    driver: PrinterDriver, emulator: PrinterEmulator, station
) -> None:
    """feed_to_encoder returns the chip serial the encoding station now holds."""
    serial = driver.feed_to_encoder()
    assert serial == "CHIP-st1-00001" and station.present == {serial}
    assert driver.status().chip_serial == serial
    driver.release_from_encoder()
    assert station.present == set() and driver.position() is Position.PRINT
    driver.eject()
    assert balanced(emulator)["output_hopper"] == 1


def test_full_card_prints_both_sides(
    driver: PrinterDriver, emulator: PrinterEmulator, face: CardFace, layout: CardLayout
) -> None:
    """print_card sends every panel; the emulator keeps what it printed; the card stays inside."""
    rendered = render_card(face, layout)
    serial = driver.feed_to_encoder()
    driver.print_card(rendered)
    assert driver.position() is Position.PRINT
    driver.eject()
    printed = emulator.printed[-1]
    assert printed.chip_serial == serial
    assert [p.colour for p in printed.front] == list(layout.front.panels)
    assert printed.back == tuple(rendered.panels("back"))
    status = driver.status()
    assert status.panels_printed == len(layout.front.panels) + len(layout.back.panels)
    assert status.ribbon_remaining == status.ribbon_capacity - 1


def test_second_feed_is_refused_while_a_card_is_inside(driver: PrinterDriver) -> None:
    """Feeding never moves a card already inside; the controller must eject or reject it."""
    driver.feed_to_encoder()
    with pytest.raises(CommandRefused):
        driver.feed_to_encoder()


def test_ribbon_out_after_n_cards(
    driver: PrinterDriver, emulator: PrinterEmulator, face: CardFace, layout: CardLayout
) -> None:
    """Ribbon out after N cards: RibbonOut, the card stays inside, a new ribbon recovers."""
    rendered = render_card(face, layout)
    emulator.inject(ribbon_out_after=1)
    driver.feed_to_print()
    driver.print_card(rendered)
    driver.eject()
    driver.feed_to_print()
    with pytest.raises(RibbonOut) as caught:
        driver.print_card(rendered)
    assert caught.value.printer == "st1"
    assert balanced(emulator)["in_machine"] == 1 and driver.status().ribbon_remaining == 0
    emulator.clear("ribbon_out_after")
    driver.print_card(rendered)
    driver.eject()
    assert balanced(emulator)["printed"] == 2


def test_feeder_empty(driver: PrinterDriver, emulator: PrinterEmulator) -> None:
    """An empty feeder raises FeederEmpty, feeds nothing, shows in status, and recovers."""
    emulator.inject(feeder_empty=True)
    assert driver.status().feeder is FeederState.EMPTY
    with pytest.raises(FeederEmpty):
        driver.feed_to_encoder()
    assert balanced(emulator)["fed"] == 0
    emulator.clear("feeder_empty")
    driver.feed_to_encoder()
    assert balanced(emulator)["fed"] == 1


def test_running_out_of_blanks_is_feeder_empty(station) -> None:
    """When the last blank is used the feeder is empty for real."""
    with PrinterEmulator("tiny", cards=1, station=station) as emulator:
        from printers.link import SerialLink

        with PrinterDriver(SerialLink(emulator.serve_pty(), timeout=0.5), "tiny") as driver:
            driver.feed_to_encoder()
            driver.reject()
            with pytest.raises(FeederEmpty):
                driver.feed_to_encoder()
        assert balanced(emulator)["reject_box"] == 1


def test_cover_open(driver: PrinterDriver, emulator: PrinterEmulator) -> None:
    """An open cover stops every move with CoverOpen; closing it lets the card out."""
    driver.feed_to_encoder()
    emulator.inject(cover_open=True)
    assert driver.status().cover_open and not driver.status().ready
    with pytest.raises(CoverOpen):
        driver.eject()
    assert balanced(emulator)["in_machine"] == 1
    emulator.clear("cover_open")
    driver.eject()
    assert balanced(emulator)["output_hopper"] == 1


@pytest.mark.parametrize("mode", ["error", "silent"])
def test_jam(driver: PrinterDriver, emulator: PrinterEmulator, station, mode: str) -> None:
    """A jam, reported or silent (card stops short), is CardJam; once freed the card is rejected."""
    emulator.inject(jam=mode)
    with pytest.raises(CardJam):
        driver.feed_to_encoder()
    snap = balanced(emulator)
    assert snap["jammed"] and snap["in_machine"] == 1
    with pytest.raises(CardJam):
        driver.reject()
    emulator.clear("jam")
    driver.reject()
    assert balanced(emulator)["in_machine"] == 0 and station.present == set()
    driver.feed_to_encoder()


def test_reject_box_full(driver: PrinterDriver, emulator: PrinterEmulator) -> None:
    """A full reject box refuses the card (it stays inside); emptying the box recovers."""
    driver.feed_to_encoder()
    emulator.inject(reject_box_full=True)
    assert driver.status().reject_box_full
    with pytest.raises(RejectBoxFull):
        driver.reject()
    assert balanced(emulator)["in_machine"] == 1
    emulator.clear("reject_box_full")
    driver.reject()
    assert balanced(emulator)["reject_box"] == 1


def test_reject_box_fills_up_at_capacity(station) -> None:
    """The reject box is full after its capacity of cards."""
    from printers.link import SerialLink

    with PrinterEmulator("rb", cards=5, station=station) as emulator:
        emulator.machine.reject_capacity = 2
        with PrinterDriver(SerialLink(emulator.serve_pty(), timeout=0.5), "rb") as driver:
            for _ in range(2):
                driver.feed_to_encoder()
                driver.reject()
            driver.feed_to_encoder()
            with pytest.raises(RejectBoxFull):
                driver.reject()
        assert balanced(emulator)["reject_box"] == 2


def test_head_too_hot(
    driver: PrinterDriver, emulator: PrinterEmulator, face: CardFace, layout: CardLayout
) -> None:
    """A hot head refuses to print with HeadTooHot; once cool the same card prints."""
    rendered = render_card(face, layout)
    driver.feed_to_print()
    emulator.inject(head_hot=True)
    with pytest.raises(HeadTooHot):
        driver.print_card(rendered)
    emulator.clear("head_hot")
    driver.print_card(rendered)
    driver.eject()
    assert balanced(emulator)["printed"] == 1


def test_silent_printer_is_offline(driver: PrinterDriver, emulator: PrinterEmulator) -> None:
    """A printer that stops answering is PrinterOffline; nothing moved; it recovers."""
    emulator.inject(silent=True)
    with pytest.raises(PrinterOffline) as caught:
        driver.feed_to_encoder()
    assert caught.value.printer == "st1"
    assert balanced(emulator)["fed"] == 0
    emulator.clear("silent")
    driver.feed_to_encoder()


def test_garbage_is_garbled_reply(driver: PrinterDriver, emulator: PrinterEmulator) -> None:
    """A printer that answers garbage is GarbledReply, for queries and moves alike."""
    emulator.inject(garbage=True)
    with pytest.raises(GarbledReply):
        driver.status()
    with pytest.raises(GarbledReply):
        driver.feed_to_encoder()
    emulator.clear("garbage")
    # The driver could not read the position first, so it moved nothing.
    assert driver.position() is Position.NONE and balanced(emulator)["fed"] == 0
    driver.feed_to_encoder()


def test_garbled_answer_to_a_move_is_not_retried(
    driver: PrinterDriver, emulator: PrinterEmulator
) -> None:
    """A move whose answer is garbled is not sent again: exactly one blank was fed."""
    driver.feed_to_encoder()
    driver.release_from_encoder()
    emulator.inject(garbage=True)
    with pytest.raises(GarbledReply):
        driver.eject()
    emulator.clear("garbage")
    assert driver.position() is Position.NONE
    assert balanced(emulator)["output_hopper"] == 1


def test_nobody_listening_is_offline() -> None:
    """A port that cannot be opened is PrinterOffline naming the printer."""
    from printers.link import SerialLink

    link = SerialLink("/dev/nonexistent-printer", timeout=0.2)
    with pytest.raises(PrinterOffline) as caught, PrinterDriver(link, "ghost"):
        pass
    assert caught.value.printer == "ghost"
