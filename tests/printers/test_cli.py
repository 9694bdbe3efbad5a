"""`cardline printers` run as an operator would, against an emulator in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from printers.face import CardFace
from printers.layout import CardLayout

CLI = [sys.executable, "-c", "from personalization.cli import main; main()", "printers"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def wait_for(path: Path, check=lambda p: True) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and check(path):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[Path]:
    proc = subprocess.Popen(
        [*CLI, "emulate", "--state-dir", str(tmp_path), "--name", "st9", "--cards", "5"]
    )
    try:
        wait_for(tmp_path / "st9.pty")
        yield tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def status_file(state: Path) -> dict[str, Any]:
    values: dict[str, Any] = json.loads((state / "st9.json").read_text(encoding="utf-8"))
    return values


def test_status_json(emulator_process: Path) -> None:
    """`printers status --json` reports the emulated printer's levels and position."""
    port = (emulator_process / "st9.pty").read_text().strip()
    result = run("status", "--port", port, "--station", "st9", "--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)["st9"]
    assert values["card_position"] == "none" and values["ribbon_remaining"] == 500
    assert values["ready"] is True and values["model"].startswith("Evolis")


def test_test_card_prints_and_keeps_pngs(emulator_process: Path) -> None:
    """`printers test-card` feeds, prints both sides, ejects; the emulator keeps both PNGs."""
    port = (emulator_process / "st9.pty").read_text().strip()
    result = run("test-card", "--port", port)
    assert result.returncode == 0, result.stderr
    wait_for(emulator_process / "st9.json", lambda p: status_file(emulator_process)["printed"] == 1)
    snap = status_file(emulator_process)
    assert snap["output_hopper"] == snap["fed"] == 1
    pngs = sorted(p.name for p in (emulator_process / "st9" / "cards").glob("*.png"))
    assert pngs == ["1-CHIP-st9-00001-back.png", "1-CHIP-st9-00001-front.png"]


def test_fault_from_another_process(emulator_process: Path) -> None:
    """`printers fault` opens the cover of a running emulator; status then fails to be ready."""
    port = (emulator_process / "st9.pty").read_text().strip()
    assert (
        run(
            "fault", "--state-dir", str(emulator_process), "--name", "st9", "--inject", "cover_open"
        ).returncode
        == 0
    )
    wait_for(
        emulator_process / "st9.json",
        lambda p: status_file(emulator_process)["faults"]["cover_open"],
    )
    values = json.loads(run("status", "--port", port, "--json").stdout)
    assert values[port]["cover_open"] is True and values[port]["ready"] is False
    failed = run("test-card", "--port", port)
    assert failed.returncode == 1 and "CoverOpen" in failed.stderr
    run("fault", "--state-dir", str(emulator_process), "--name", "st9", "--clear", "cover_open")
    wait_for(
        emulator_process / "st9.json",
        lambda p: not status_file(emulator_process)["faults"]["cover_open"],
    )


def test_unknown_fault_is_refused(tmp_path: Path) -> None:
    """A misspelt fault name is an error naming the known faults."""
    result = run("fault", "--state-dir", str(tmp_path), "--name", "x", "--inject", "ribon=1")
    assert result.returncode == 2 and "ribbon_out_after" in result.stderr


def test_status_of_a_silent_port_fails(tmp_path: Path) -> None:
    """A printer that does not answer makes `status` exit 1 naming PrinterOffline."""
    master, slave = os.openpty()
    try:
        result = run("status", "--port", os.ttyname(slave), "--json", "--timeout", "0.3")
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 1
    assert "PrinterOffline" in result.stdout


def test_bench_measure(face: CardFace, layout: CardLayout) -> None:
    """bench.measure gives render and emulator time and the bytes the driver sends for one card."""
    from printers.bench import measure
    from printers.protocol import panel_bytes

    figures = measure(face, layout, cards=2)
    assert figures["render_ms_per_card"] > 0
    assert figures["emulator_ms_per_card"] > 0
    payload = 2 * (3 * panel_bytes(32) + 2 * panel_bytes(2))
    assert payload < figures["printer_bytes_per_card"] < payload + 1000
