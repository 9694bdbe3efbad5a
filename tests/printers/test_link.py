"""The serial link holds its printer port exclusively: a second program is refused clearly."""

from __future__ import annotations

import pytest

from printers.emulator import PrinterEmulator
from printers.errors import PrinterOffline
from printers.link import SerialLink


def test_a_second_link_to_a_held_port_is_refused(emulator: PrinterEmulator) -> None:
    """While a line holds a printer's pseudo-terminal, a test card from another program is
    refused with 'another program holds the printer port' instead of mixing its commands in;
    once the line lets go, the port opens again."""
    url = emulator.serve_pty()
    with SerialLink(url, timeout=0.5), pytest.raises(
            PrinterOffline, match="another program holds the printer port"):
        SerialLink(url, timeout=0.5).__enter__()
    with SerialLink(url, timeout=0.5) as again:
        assert again.url == url
