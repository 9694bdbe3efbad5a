"""JSON Lines read with a bounded memory: a line is never held beyond its byte limit.

JSON Lines (jsonlines.org) separates records with ``\\n``; a ``\\r`` before it is part of the
record's text and is JSON whitespace (RFC 8259 §2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO

_SKIP_CHUNK = 64 * 1024
# A registry batch file may open with a header line naming the registry's batch, which is
# not an application: ``{"registry_batch": "ID", ...}``.
REGISTRY_HEADER = "registry_batch"
_HEADER_START = b'{"' + REGISTRY_HEADER.encode() + b'"'


def registry_header(line: bytes | None) -> dict[str, object] | None:
    """The header object when ``line`` (a file's first line) is the registry's header."""
    if line is None or not line.lstrip().startswith(_HEADER_START):
        return None
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


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
