"""Fingerprint intake: decode a PNG, JPEG or WSQ finger image, bring it to 8-bit grey at
500 ppi, refuse a blank one, and re-encode it as WSQ within its share of the DG3 budget.

- ISO/IEC 19794-4 §7.1 / ANSI/NIST-ITL 1-2011 Table 8: the finger image is 8-bit grey at
  500 ppi (image acquisition setting level 31); a source at another resolution is resampled,
  its resolution read from the file (PNG pHYs, JPEG JFIF/EXIF density, the WSQ NISTCOM
  comment), or taken as 500 ppi when the file says nothing.
- FBI IAFIS-IC-0110 (WSQ): 0.75 bit per pixel (15:1) is the usual rate; intake lowers it
  only as far as the profile allows, so that the finger fits.
- ISO/IEC 19794-4 Table 2 (finger position codes): right index = 2, left index = 7.

A finger may be missing only with one of the profile's reason codes. The codes cardline uses
(any profile may list fewer) and their ANSI/NIST-ITL 1-2011 Field 14.018 (AMP) equivalents:

============  ====  =======================================================
code          AMP   meaning
============  ====  =======================================================
amputated     XX    the finger is amputated
bandaged      UP    the finger could not be printed (bandage, cast, injury)
unreadable    UP    printed, but no usable ridges (scarred or worn skin)
============  ====  =======================================================

Refusals raise :class:`FingerprintError` whose message names the rule broken, never what the
image shows or any of its bytes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageStat

from personalization.applications import wsqcodec

RIGHT_INDEX, LEFT_INDEX = 2, 7  # ISO/IEC 19794-4 Table 2
FINGERS: dict[str, int] = {"right_index": RIGHT_INDEX, "left_index": LEFT_INDEX}
PPI = 500  # ISO/IEC 19794-4 §7.1: the resolution of the images cardline keeps
MISSING_REASONS = ("amputated", "bandaged", "unreadable")
DG3_WRAPPING = 256  # bytes of a DG3 outside the WSQ images: ICAO 9303-10 Table 44 templates
# and ISO/IEC 19794-4 record and finger headers (under 100 bytes a finger)
_OPEN_FORMATS = ("PNG", "JPEG", wsqcodec.FORMAT)
# Pillow modes convert("L") maps to 8-bit grey (ITU-R 601-2 luma for colour)
_CONVERTIBLE = frozenset({"L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
_BLOCK = 16  # pixels a side of the blocks the ridge measure looks at (0.8 mm at 500 ppi)
_RESOLUTION_SLACK = 0.01  # a declared resolution within 1% of 500 ppi is taken as 500
_FIT_ATTEMPTS = 6


class FingerprintError(ValueError):
    """The finger image cannot be used; the message says why (never what it shows)."""


@dataclass(frozen=True, slots=True)
class FingerSpec:
    """What DG3 needs of one finger image, and what intake accepts (sizes at 500 ppi)."""

    max_bytes: int = 19_872  # the WSQ of one finger: its half of a 40 000-byte DG3
    bitrate: float = 0.75  # WSQ bits per pixel tried first
    min_bitrate: float = 0.45  # the lowest intake goes to before it refuses the finger
    min_width: int = 200
    min_height: int = 250
    max_width: int = 800
    max_height: int = 1000
    min_source_ppi: int = 250
    max_source_ppi: int = 1200
    min_contrast: float = 16.0  # grey-level standard deviation over the whole image
    ridge_block_energy: int = 8  # mean edge response of a block that shows ridges
    min_ridge_area: float = 0.2  # fraction of blocks that must show ridges
    max_source_bytes: int = 512_000  # two inline fingers and a photo fit a 4 MiB line
    max_source_pixels: int = 4_000_000
    required: bool = False
    missing_reasons: tuple[str, ...] = MISSING_REASONS


@dataclass(frozen=True, slots=True)
class FingerImage:
    """One finger ready for DG3: WSQ bytes, pixel size, resolution, ISO/IEC 19794-4 position."""

    position: int
    wsq: bytes
    width: int
    height: int
    ppi: int = PPI


@dataclass(frozen=True, slots=True)
class MissingFinger:
    """A finger the registry could not capture, and the profile's code for why."""

    position: int
    reason: str


Finger = FingerImage | MissingFinger


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """The two index fingers of an application; at least one is an image."""

    right_index: Finger
    left_index: Finger

    def images(self) -> tuple[FingerImage, ...]:
        """The fingers present, right index first (the order of DG3)."""
        return tuple(f for f in (self.right_index, self.left_index)
                     if isinstance(f, FingerImage))


def _open(data: bytes, spec: FingerSpec) -> tuple[Image.Image, tuple[float, float] | None]:
    """Read the header only, check the declared size, then decode the pixels (a WSQ file in
    a child process); the image and the resolution the file declares."""
    with warnings.catch_warnings():
        # Not thread-safe (the filter list is process-wide); intake runs on one thread.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise FingerprintError("image declares too many pixels (decompression bomb)") \
                from exc
        if image.width * image.height > spec.max_source_pixels:
            raise FingerprintError(f"image declares more than {spec.max_source_pixels} pixels")
        if image.format == wsqcodec.FORMAT:
            pixels, ppi = wsqcodec.decode(data, image.width, image.height)
            return pixels, ((ppi, ppi) if ppi else None)
        image.load()
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and dpi[0] and dpi[1]:
        return image, (float(dpi[0]), float(dpi[1]))
    return image, None


def _decode(data: bytes, spec: FingerSpec) -> tuple[Image.Image, tuple[float, float] | None]:
    try:
        return _open(data, spec)
    except FingerprintError:
        raise
    except Exception as exc:
        # A hostile or truncated file can make a decoder raise almost anything: each one is a
        # refused image.
        reason = exc.__class__.__name__
        raise FingerprintError(f"image cannot be decoded as PNG, JPEG or WSQ ({reason})") \
            from exc


def _resolution(declared: tuple[float, float] | None, spec: FingerSpec) -> tuple[float, float]:
    """The (x, y) resolution in ppi the file declares, 500 when it declares none."""
    if declared is None:
        return float(PPI), float(PPI)
    for value in declared:
        if not spec.min_source_ppi <= value <= spec.max_source_ppi:
            raise FingerprintError(f"image declares {round(value)} ppi; between "
                                   f"{spec.min_source_ppi} and {spec.max_source_ppi} expected")
    return declared


def _grey(image: Image.Image) -> Image.Image:
    if image.mode not in _CONVERTIBLE:
        raise FingerprintError(f"image mode {image.mode} is not 8-bit grey or colour")
    return image if image.mode == "L" else image.convert("L")


def _size_at_500_ppi(image: Image.Image, ppi: tuple[float, float]) -> tuple[int, int]:
    scale = (PPI / ppi[0], PPI / ppi[1])
    if all(abs(s - 1) <= _RESOLUTION_SLACK for s in scale):
        return image.size
    return max(1, round(image.width * scale[0])), max(1, round(image.height * scale[1]))


def _check_size(size: tuple[int, int], spec: FingerSpec) -> None:
    """Checked before resampling, so an oversized target is never drawn."""
    width, height = size
    if not (spec.min_width <= width <= spec.max_width
            and spec.min_height <= height <= spec.max_height):
        raise FingerprintError(
            f"image is {width}x{height} pixels at {PPI} ppi; between "
            f"{spec.min_width}x{spec.min_height} and {spec.max_width}x{spec.max_height} expected")


def ridge_area(image: Image.Image, block_energy: int) -> float:
    """The fraction of ``_BLOCK``-pixel blocks of a grey image whose mean edge response (a
    3×3 Laplacian, its positive half) reaches ``block_energy``: ridges give a strong response
    every few pixels, a blank, smooth or two-tone image almost none."""
    edges = image.filter(ImageFilter.FIND_EDGES)
    # Pillow copies the outermost pixels unfiltered: they are no edge response
    blocks = edges.crop((1, 1, image.width - 1, image.height - 1)).reduce(_BLOCK)
    histogram = blocks.histogram()
    return sum(histogram[block_energy:]) / max(1, sum(histogram))


def check_ridges(image: Image.Image, spec: FingerSpec) -> None:
    """Refuse a blank or uniform image, or one with too few ridges (profile thresholds)."""
    contrast = ImageStat.Stat(image).stddev[0]
    if contrast < spec.min_contrast:
        raise FingerprintError(f"image is blank or uniform (grey-level deviation "
                               f"{contrast:.1f}, at least {spec.min_contrast:g} needed)")
    area = ridge_area(image, spec.ridge_block_energy)
    if area < spec.min_ridge_area:
        raise FingerprintError(f"image shows ridges over {area:.0%} of its area; at least "
                               f"{spec.min_ridge_area:.0%} needed")


def fit_wsq(image: Image.Image, spec: FingerSpec) -> bytes:
    """WSQ at the profile's bit rate, lowered (no further than its minimum) until it fits."""
    bitrate = spec.bitrate
    for attempt in range(1, _FIT_ATTEMPTS + 1):
        data = wsqcodec.encode(image, bitrate, PPI)
        if len(data) <= spec.max_bytes:
            return data
        if bitrate <= spec.min_bitrate:
            break
        # the WSQ size is close to proportional to the bit rate (the tables are a few hundred
        # bytes): aim a little under the budget; the last attempt is at the minimum
        guess = bitrate * spec.max_bytes / len(data) * 0.97
        last = attempt == _FIT_ATTEMPTS - 1
        bitrate = spec.min_bitrate if last else max(spec.min_bitrate, guess)
    raise FingerprintError(f"image does not fit its DG3 share of {spec.max_bytes} bytes even "
                           f"at {spec.min_bitrate:g} bit per pixel")


def normalize_finger(data: bytes, spec: FingerSpec, position: int) -> FingerImage:
    """Decode, check, resample and re-encode one finger image, or :class:`FingerprintError`."""
    if not data:
        raise FingerprintError("image is empty")
    if len(data) > spec.max_source_bytes:
        raise FingerprintError(f"image is larger than {spec.max_source_bytes} bytes")
    image, declared = _decode(data, spec)
    try:
        size = _size_at_500_ppi(image, _resolution(declared, spec))
        _check_size(size, spec)
        grey = _grey(image)
        if grey.size != size:
            grey = grey.resize(size, Image.Resampling.LANCZOS)
        check_ridges(grey, spec)
        return FingerImage(position, fit_wsq(grey, spec), grey.width, grey.height)
    except FingerprintError:
        raise
    except Exception as exc:  # an odd mode or a codec error surfacing late
        raise FingerprintError(f"image cannot be processed ({exc.__class__.__name__})") from exc
