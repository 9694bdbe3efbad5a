"""Raw PC/SC round trip of a small command: the physical bound the encoder is compared with."""

from __future__ import annotations

import statistics
import time

from applets.iso7816.apdu import CommandAPDU
from applets.transport.base import Transport
from applets.transport.pcsc import PCSCTransport

# A harmless command any card answers at once (SELECT by FID of the master file, no Le):
# the figure measures the reader path, not the card's work.
_PROBE = CommandAPDU(0x00, 0xA4, 0x00, 0x0C, b"\x3f\x00")
_WARM_UP = 20


def measure_roundtrip_ms(reader_name: str, n: int, command: CommandAPDU = _PROBE) -> float:
    """Median milliseconds of one APDU through pcscd to the card in ``reader_name`` and back."""
    with PCSCTransport(reader_name) as transport:
        if not transport.connected:
            transport.wait_for_card(5.0)
        for _ in range(_WARM_UP):
            transport.transmit(command)
        return roundtrip_ms(transport, n, command)


def roundtrip_ms(transport: Transport, n: int, command: CommandAPDU = _PROBE) -> float:
    """Median milliseconds of ``n`` probes on an open ``transport`` (a burst taken between two
    timed runs gives each its wire from the same moment)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    samples: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        transport.transmit(command)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000.0
