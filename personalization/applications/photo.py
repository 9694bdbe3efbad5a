"""Portrait intake: decode a JPEG/PNG, crop to the profile's aspect, resize, and re-encode as a
JPEG that fits the profile's DG2 budget (ICAO 9303-10 §4.7.2: the chip face image is JPEG or
JPEG2000; CCCD chips carry JPEG)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Decompression-bomb guard: a 50-megapixel portrait is already absurd for an ID photo.
Image.MAX_IMAGE_PIXELS = 50_000_000

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG"})


class PhotoError(ValueError):
    """The photo cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class PhotoSpec:
    """What the chip and the card face need of the portrait."""

    width: int
    height: int
    max_bytes: int
    min_source_width: int
    min_source_height: int
    min_quality: int = 30
    max_quality: int = 90


@dataclass(frozen=True, slots=True)
class Portrait:
    """A portrait ready for DG2: JPEG bytes and their pixel size."""

    jpeg: bytes
    width: int
    height: int


def _decode(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ACCEPTED_FORMATS:
            raise PhotoError(f"photo format {image.format or 'unknown'} is not JPEG or PNG")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        reason = exc.__class__.__name__
        raise PhotoError(f"photo cannot be decoded as JPEG or PNG ({reason})") from exc
    return ImageOps.exif_transpose(image) or image


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
    image = _decode(data)
    if image.width < spec.min_source_width or image.height < spec.min_source_height:
        raise PhotoError(
            f"photo is {image.width}x{image.height} pixels; at least "
            f"{spec.min_source_width}x{spec.min_source_height} is needed"
        )
    extrema = image.convert("L").getextrema()
    if isinstance(extrema, tuple) and extrema[1] - extrema[0] < 16:  # type: ignore[operator]
        raise PhotoError("photo is blank (no contrast)")
    fitted = ImageOps.fit(image.convert("RGB"), (spec.width, spec.height), Image.Resampling.LANCZOS)
    return Portrait(_fit(fitted, spec), spec.width, spec.height)
