"""Portrait intake: decode a JPEG/PNG, crop to the profile's aspect, resize, and re-encode as a
JPEG that fits the profile's DG2 budget (ICAO 9303-10 §4.7.2: the chip face image is JPEG or
JPEG2000; CCCD chips carry JPEG)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

# Pillow's own decompression-bomb guard, process-wide: warns above this many pixels and raises
# above twice as many. Intake turns the warning into an error too (see ``_open``), and checks the
# profile's own, lower cap (``PhotoSpec.max_source_pixels``) on the declared size before any
# pixel is decoded; this stays as the backstop for every other image cardline opens.
Image.MAX_IMAGE_PIXELS = 50_000_000

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG"})
# Only these decoders are tried: a registry photo never needs Pillow's other format plugins.
_OPEN_FORMATS = ("JPEG", "PNG")

DEFAULT_MAX_SOURCE_BYTES = 2 * 1024 * 1024  # a portrait file (or decoded inline photo)
DEFAULT_MAX_SOURCE_PIXELS = 25_000_000  # declared width × height (≈ 75 MB as RGB)


class PhotoError(ValueError):
    """The photo cannot be used; the message says why (never what the photo shows)."""


@dataclass(frozen=True, slots=True)
class PhotoSpec:
    """What the chip and the card face need of the portrait, and what intake accepts."""

    width: int
    height: int
    max_bytes: int
    min_source_width: int
    min_source_height: int
    min_quality: int = 30
    max_quality: int = 90
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS


@dataclass(frozen=True, slots=True)
class Portrait:
    """A portrait ready for DG2: JPEG bytes and their pixel size."""

    jpeg: bytes
    width: int
    height: int


def _open(data: bytes, spec: PhotoSpec) -> Image.Image:
    """Read the header only, check format and declared size, then decode the pixels."""
    with warnings.catch_warnings():
        # Not thread-safe (the filter list is process-wide); intake runs on one thread.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoError("photo declares too many pixels (decompression bomb)") from exc
        if image.format not in ACCEPTED_FORMATS:
            raise PhotoError(f"photo format {image.format or 'unknown'} is not JPEG or PNG")
        if image.width * image.height > spec.max_source_pixels:
            raise PhotoError(f"photo declares more than {spec.max_source_pixels} pixels")
        image.load()
    return image


def _decode(data: bytes, spec: PhotoSpec) -> Image.Image:
    try:
        image = _open(data, spec)
        return ImageOps.exif_transpose(image) or image
    except PhotoError:
        raise
    except Exception as exc:
        # A hostile or truncated file can make a decoder raise almost anything (OSError,
        # SyntaxError, ValueError, struct.error, MemoryError…): each one is a refused photo.
        reason = exc.__class__.__name__
        raise PhotoError(f"photo cannot be decoded as JPEG or PNG ({reason})") from exc


def _encode(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _fit(image: Image.Image, spec: PhotoSpec) -> bytes:
    """Binary-search the highest JPEG quality whose output fits the budget."""
    low, high, best = spec.min_quality, spec.max_quality, b""
    while low <= high:
        quality = (low + high) // 2
        data = _encode(image, quality)
        if len(data) <= spec.max_bytes:
            best, low = data, quality + 1
        else:
            high = quality - 1
    if not best:
        raise PhotoError(
            f"photo does not fit the DG2 budget of {spec.max_bytes} bytes even at JPEG quality "
            f"{spec.min_quality}"
        )
    return best


def normalize_photo(data: bytes, spec: PhotoSpec) -> Portrait:
    """Decode, check, crop, resize and re-encode a portrait, or raise :class:`PhotoError`."""
    if not data:
        raise PhotoError("photo is empty")
    if len(data) > spec.max_source_bytes:
        raise PhotoError(f"photo is larger than {spec.max_source_bytes} bytes")
    image = _decode(data, spec)
    if image.width < spec.min_source_width or image.height < spec.min_source_height:
        raise PhotoError(
            f"photo is {image.width}x{image.height} pixels; at least "
            f"{spec.min_source_width}x{spec.min_source_height} is needed"
        )
    try:
        return _portrait(image, spec)
    except PhotoError:
        raise
    except Exception as exc:  # an odd mode or a decoder error surfacing late
        raise PhotoError(f"photo cannot be processed ({exc.__class__.__name__})") from exc


def _portrait(image: Image.Image, spec: PhotoSpec) -> Portrait:
    extrema = image.convert("L").getextrema()
    if isinstance(extrema, tuple) and extrema[1] - extrema[0] < 16:  # type: ignore[operator]
        raise PhotoError("photo is blank (no contrast)")
    fitted = ImageOps.fit(image.convert("RGB"), (spec.width, spec.height), Image.Resampling.LANCZOS)
    return Portrait(_fit(fitted, spec), spec.width, spec.height)
