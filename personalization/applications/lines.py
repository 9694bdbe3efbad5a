"""JSON Lines read with a bounded memory: a line is never held beyond its byte limit.

JSON Lines (jsonlines.org) separates records with ``\\n``; a ``\\r`` before it is part of the
record's text and is JSON whitespace (RFC 8259 §2).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

_SKIP_CHUNK = 64 * 1024


def bounded_lines(handle: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` for each line of at most ``limit`` bytes (newline excluded),
    ``(line number, None)`` for a longer one, which is skipped without being held."""
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            _skip_to_newline(handle)
            yield number, None
        else:
            yield number, line


def _skip_to_newline(handle: BinaryIO) -> None:
    while chunk := handle.readline(_SKIP_CHUNK):
        if chunk.endswith(b"\n"):
            return
