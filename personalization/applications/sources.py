"""Where a record's images (the photo, the fingers) come from: a file beside the applications
file, or inline base64.

An image path is data from the registry, so it is held to these rules before anything is
opened:

- it is text of at most ``MAX_PATH_BYTES`` UTF-8 bytes, with no NUL, no control character and
  no unpaired surrogate (JSON can carry ``"\\ud800"``; no real file name on POSIX holds one);
- it is relative, has no ``..`` component, and — after symbolic links are resolved — still
  names something inside the folder of the applications file (a link inside the folder to a
  file inside it is fine; a link leading out of it is refused like ``..``);
- what it names is a regular file (POSIX.1-2017 ``S_ISREG``): it is opened with
  ``O_NONBLOCK`` so a FIFO cannot block the open, and checked with ``fstat`` on the open
  descriptor, so a FIFO, a device or a directory is refused without reading from it;
- the file is at most ``max_bytes`` long, and at most ``max_bytes + 1`` bytes are ever read.

A file named with ``{"path": …, "sha256": …}`` is used only when its bytes have that SHA-256
(FIPS 180-4); a signed batch names every file so, and its signature then covers the images.
An inline image's base64 text is capped at the encoded length of ``max_bytes`` before it is
decoded (RFC 4648 §4: 4 characters per 3 bytes).

Refusals raise :class:`SourceError` whose message names the rule, never the path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
import unicodedata
from pathlib import Path

from personalization.applications.model import FieldError, InlinePhoto, PhotoFile

MAX_PATH_BYTES = 4096  # PATH_MAX on Linux; resolving a longer one would only waste lstat calls
_READ_CHUNK = 1 << 20
_OPEN_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
_OUTSIDE = "path must be relative and stay inside the folder of the applications file"


class SourceError(ValueError):
    """The image cannot be read; the message names the rule broken."""


def inline_bytes(encoded: str, max_bytes: int) -> bytes:
    """Decode an inline base64 photo whose encoded length fits ``max_bytes`` once decoded."""
    if len(encoded) > 4 * -(-max_bytes // 3):
        raise SourceError(f"inline base64 is longer than a photo of {max_bytes} bytes")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SourceError("base64 is not valid") from exc


def _bad_character(path: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in path)


def resolve_photo_path(photo: str, base_dir: Path) -> Path:
    """The real path of ``photo`` inside ``base_dir``, or :class:`SourceError`."""
    if not photo.strip():
        raise SourceError("path is empty")
    if _bad_character(photo):
        raise SourceError("path contains a NUL, a control character or an unpaired surrogate")
    if len(photo.encode("utf-8")) > MAX_PATH_BYTES:
        raise SourceError(f"path is longer than {MAX_PATH_BYTES} bytes")
    relative = Path(photo)
    if relative.is_absolute() or ".." in relative.parts:
        raise SourceError(_OUTSIDE)
    try:
        root = base_dir.resolve()
        target = (root / relative).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (3.11)
        raise SourceError(f"cannot resolve the path ({_why(exc)})") from exc
    if not target.is_relative_to(root):
        raise SourceError(_OUTSIDE)
    return target


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # refuse devices before opening them
            raise SourceError("is not a regular file")
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise SourceError(f"cannot read the file ({_why(exc)})") from exc
    try:
        info = os.fstat(fd)  # what was opened, not what the name pointed at a moment ago
        if not stat.S_ISREG(info.st_mode):
            raise SourceError("is not a regular file")
        if info.st_size > max_bytes:
            raise SourceError(f"file is larger than {max_bytes} bytes")
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise SourceError(f"cannot read the file ({_why(exc)})") from exc
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew after fstat
        raise SourceError(f"file is larger than {max_bytes} bytes")
    return data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _why(exc: OSError | RuntimeError) -> str:
    """The OS's words for an error (``strerror``), which never include the file name."""
    if isinstance(exc, RuntimeError):
        return "symbolic link loop"
    return exc.strerror or exc.__class__.__name__


def photo_file_bytes(photo: str, base_dir: Path, max_bytes: int) -> bytes:
    """The bytes of the photo file ``photo`` names, relative to ``base_dir``."""
    return read_regular_file(resolve_photo_path(photo, base_dir), max_bytes)


_SHA256 = re.compile(r"[0-9a-f]{64}")
_NEEDS_DIGEST = ('an image by path in a signed batch carries the SHA-256 of its bytes: '
                 '{"path": "…", "sha256": "…"}')


def record_image_bytes(name: str, source: str | InlinePhoto | PhotoFile, base_dir: Path,
                       max_bytes: int, digests: bool, errors: list[FieldError]) -> bytes:
    """The bytes of the image field ``name`` (``photo``, ``fingerprints.right_index``…) of a
    record, or ``b""`` with the reason added to ``errors``; ``digests``: a bare path is
    refused (a signed batch)."""
    try:
        if isinstance(source, InlinePhoto):
            return inline_bytes(source.base64, max_bytes)
        if isinstance(source, PhotoFile):
            return _digested(name, source, base_dir, max_bytes, errors)
        if digests:
            errors.append(FieldError(name, _NEEDS_DIGEST))
            return b""
        return photo_file_bytes(source, base_dir, max_bytes)
    except SourceError as exc:
        errors.append(FieldError(name, str(exc)))
        return b""


def _digested(name: str, image: PhotoFile, base_dir: Path, max_bytes: int,
              errors: list[FieldError]) -> bytes:
    """The image file's bytes, only when they are the ones whose SHA-256 the record holds."""
    if not _SHA256.fullmatch(image.sha256.lower()):
        errors.append(FieldError(name, "sha256 is not 64 hexadecimal digits"))
        return b""
    data = photo_file_bytes(image.path, base_dir, max_bytes)
    if hashlib.sha256(data).hexdigest() != image.sha256.lower():
        errors.append(FieldError(name, "the file's SHA-256 is not the one in the record: it "
                                       "changed after the registry signed"))
        return b""
    return data
