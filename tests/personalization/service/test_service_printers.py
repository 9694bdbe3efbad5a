"""The printers service called directly, against an emulated printer in this process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from personalization.config import parse_config
from personalization.service.errors import LineNotUp, NotFound, ServiceError
from personalization.service.printers import (
    PrinterError,
    PrinterPort,
    emulated_printer,
    inject_faults,
    parse_faults,
    print_test_card,
    printer_status,
    specimen_card,
    station_ports,
)

ROOT = Path(__file__).resolve().parents[3]


def _line(tmp_path: Path):
    """The embedded default line (stations station-1 and station-2, ports auto) under tmp_path."""
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    return parse_config(text.replace("data_dir: .cardline", f"data_dir: {tmp_path}"), tmp_path)


def test_auto_port_without_emulator_is_line_not_up(tmp_path: Path) -> None:
    """A station whose port is 'auto' with no emulator's .pty file raises LineNotUp."""
    with pytest.raises(LineNotUp, match="station-1: port is 'auto'"):
        station_ports(_line(tmp_path), "station-1")


def test_auto_port_reads_the_emulator_pty(tmp_path: Path) -> None:
    """With <data_dir>/printers/<name>.pty written, that is the station's port."""
    (tmp_path / "printers").mkdir()
    (tmp_path / "printers" / "station-2.pty").write_text("/dev/pts/77\n", encoding="utf-8")
    assert station_ports(_line(tmp_path), "station-2") == [
        PrinterPort("station-2", "/dev/pts/77")]


def test_unknown_station_names_the_configuration(tmp_path: Path) -> None:
    """A station not in line.yaml raises NotFound naming it and the file."""
    with pytest.raises(NotFound, match=r"no station 'st9' in my\.yaml"):
        station_ports(_line(tmp_path), "st9", source="my.yaml")


def test_fault_values_and_unknown_faults(tmp_path: Path) -> None:
    """FAULT=VALUE items parse to flags, counts and words; a misspelt fault is refused."""
    assert parse_faults(["cover_open", "ribbon_out_after=3", "jam=silent"]) == {
        "cover_open": True, "ribbon_out_after": 3, "jam": "silent"}
    with pytest.raises(ServiceError, match=r"unknown fault\(s\) ribon; known: .*ribbon_out"):
        inject_faults(tmp_path, "x", {"ribon": 1})
    assert not (tmp_path / "x.control.json").exists()


def test_unknown_timing_is_refused(tmp_path: Path) -> None:
    """An emulator timing other than fast or realistic raises before anything is served."""
    with pytest.raises(ServiceError, match="fast or realistic"), \
            emulated_printer("e", tmp_path, timing="slow"):
        pass
    assert not (tmp_path / "e.pty").exists()


def _cover_open(port: PrinterPort) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if printer_status([port], timeout=2.0)[0].fields.get("cover_open"):
            return True
        time.sleep(0.1)
    return False


def test_status_test_card_and_fault_on_an_emulator(tmp_path: Path) -> None:
    """Status reads the emulator, a test card is printed and ejected, an injected open cover
    makes the next test card raise the printer's CoverOpen error."""
    with emulated_printer("st8", tmp_path, cards=3) as served:
        port = PrinterPort("st8", served[0])
        assert (tmp_path / "st8.pty").read_text(encoding="utf-8").strip() == served[0]
        before = printer_status([port])[0]
        assert not before.failed and before.fields["model"].startswith("Evolis")
        card = specimen_card()
        print_test_card(port, card)
        after = printer_status([port])[0].fields
        assert after["cards_inserted"] == 1 and after["card_position"] == "none"
        inject_faults(tmp_path, "st8", {"cover_open": True})
        assert json.loads((tmp_path / "st8.control.json").read_text())["inject"] == {
            "cover_open": True}
        assert _cover_open(port)
        with pytest.raises(PrinterError) as raised:
            print_test_card(port, card)
        assert type(raised.value).__name__ == "CoverOpen"


def test_a_silent_port_reports_printer_offline(tmp_path: Path) -> None:
    """A pseudo-terminal nobody answers on gives a failed report naming PrinterOffline."""
    master, slave = os.openpty()
    try:
        report = printer_status([PrinterPort("quiet", os.ttyname(slave))], timeout=0.3)[0]
    finally:
        os.close(master)
        os.close(slave)
    assert report.failed and report.fields["error"] == "PrinterOffline"
