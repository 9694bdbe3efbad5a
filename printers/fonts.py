"""The fonts of the card face, found where their Debian packages install them."""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from PIL import ImageFont

from printers.errors import FontMissing

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# font key -> (file name, Debian package that installs it)
FONTS: dict[str, tuple[str, str]] = {
    "sans": ("DejaVuSans.ttf", "fonts-dejavu-core"),
    "sans-bold": ("DejaVuSans-Bold.ttf", "fonts-dejavu-core"),
    "serif-bold": ("DejaVuSerif-Bold.ttf", "fonts-dejavu-core"),
    # ICAO 9303-3 §4.2: the MRZ is printed in OCR-B.
    "ocr-b": ("OCRB.otf", "fonts-ocr-b"),
}


@cache
def font_path(key: str) -> Path:
    """Where the font ``key`` is installed; ``FontMissing`` names the package to install."""
    if key not in FONTS:
        raise FontMissing("", f"unknown font {key!r}; known: {', '.join(sorted(FONTS))}")
    filename, package = FONTS[key]
    for folder in FONT_DIRS:
        for found in sorted(folder.rglob(filename)) if folder.is_dir() else []:
            return found
    raise FontMissing("", f"font {filename} not found; install the Debian package {package}")


@lru_cache(maxsize=256)
def font(key: str, size: int) -> ImageFont.FreeTypeFont:
    """The font ``key`` at ``size`` pixels."""
    return ImageFont.truetype(str(font_path(key)), size)
