"""Files only their owner may read: passphrases, sessions, reports that list document numbers.
Only the standard library, so any package can use it."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``text`` (a str as UTF-8, or bytes) to ``path`` as the owner's alone (0600,
    whatever the umask or an older file's mode), whole or not at all: into a sibling file
    first, synced, then renamed over ``path``. A link at the temporary name is refused, never
    followed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
