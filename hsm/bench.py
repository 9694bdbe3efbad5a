"""The HSM part of ``cardline bench``: how many signatures per second the signer gives."""

from __future__ import annotations

import time
from typing import Protocol


class _Signs(Protocol):
    def sign(self, data: bytes) -> bytes: ...


BENCH_MESSAGE = bytes(range(32))  # stands in for the DER signedAttrs of one SOD


def measure_signs_per_second(signer: _Signs, seconds: float) -> float:
    """Sign for about ``seconds`` in this thread and return signatures per second.

    Every signature counts against the DS key's document maximum, like a real one.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        signer.sign(BENCH_MESSAGE)
        count += 1
        now = time.perf_counter()
    return count / (now - start)
