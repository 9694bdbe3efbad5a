"""WSQ (FBI IAFIS-IC-0110, the grey-scale fingerprint image compression) through NIST NBIS, as
the ``wsq`` package ships it: the only module that reaches the codec.

- **Decoding** a WSQ file from outside runs NBIS in a child process of its own
  (:func:`decode`): the NBIS decoder is not safe on hostile input (mutated files crash it
  with a segmentation fault, and its Huffman decoder writes zero runs without a bound), so a
  bad file may kill only that child, never intake. Only the header is read in this process,
  by the Pillow plugin's Python parser, so the declared size is checked before any decoding.
- **Decoding a finger cardline encoded itself** (:func:`decode_trusted`, for the printed card
  face) runs NBIS in this process, through the Pillow plugin, after the same header check:
  every finger an application holds was re-encoded by :func:`encode` at intake, so these
  bytes are the encoder's own output, and a child process would cost more than the decoding.
- **Encoding** calls NBIS ``wsq_encode_mem`` in the package's extension module directly,
  because the plugin's ``save`` always asks for 0.75 bit per pixel (15:1), and intake must be
  able to lower the bit rate until a finger fits its share of the DG3 budget. It only ever
  sees pixels cardline decoded itself. The call holds the GIL (``ctypes.PyDLL``): NBIS keeps
  its encoder tables in globals.
"""

from __future__ import annotations

import ctypes
import importlib.util
import io
import struct
import subprocess
import sys
from functools import cache
from pathlib import Path

import wsq  # noqa: F401  (registers the WSQ plugin with Pillow)
from PIL import Image

FORMAT = "WSQ"
DECODE_TIMEOUT_S = 10.0  # a finger decodes in a few milliseconds; a hung decoder is refused
# The child: NBIS wsq_decode_mem over stdin; width, height, ppi (-1: none declared) and the
# pixels on stdout. -I -S: no environment, no site; the extension's folder is argv[1].
_CHILD = ("import struct, sys\n"
          "sys.path.insert(0, sys.argv[1])\n"
          "import _wsq\n"
          "pixels, width, height, ppi = _wsq.decompress(sys.stdin.buffer.read())\n"
          "sys.stdout.buffer.write(struct.pack('>iii', width, height, ppi) + pixels)\n")
_HEADER = struct.Struct(">iii")


class WSQError(ValueError):
    """The codec refused the image; the message carries NBIS's return code, never pixels."""


class _NBIS:
    """The NBIS entry points of the ``_wsq`` extension (NBIS ``wsq.h``)."""

    def __init__(self, path: str) -> None:
        lib = ctypes.PyDLL(path)
        self.encode = lib.wsq_encode_mem
        self.encode.argtypes = [ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
                                ctypes.POINTER(ctypes.c_int), ctypes.c_float, ctypes.c_char_p,
                                ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                ctypes.c_char_p]
        self.encode.restype = ctypes.c_int
        self.free = ctypes.CDLL(None).free  # NBIS allocates its output with malloc
        self.free.argtypes = [ctypes.c_void_p]
        self.free.restype = None


@cache
def _extension() -> str:
    spec = importlib.util.find_spec("_wsq")
    if spec is None or spec.origin is None:
        raise WSQError("the NBIS WSQ codec (package wsq) is not installed")
    return spec.origin


@cache
def _nbis() -> _NBIS:
    return _NBIS(_extension())


def encode(image: Image.Image, bitrate: float, ppi: int) -> bytes:
    """``image`` (8-bit grey) as WSQ at ``bitrate`` bits per pixel, its NISTCOM saying ``ppi``."""
    if image.mode != "L":
        raise WSQError(f"WSQ takes 8-bit grey, not mode {image.mode}")
    nbis = _nbis()
    out = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_int(0)
    # NBIS wsq_encode_mem(odata, olen, r_bitrate, idata, w, h, depth, ppi, comment)
    code = nbis.encode(ctypes.byref(out), ctypes.byref(size), bitrate, image.tobytes(),
                       image.width, image.height, 8, ppi, None)
    if code != 0:
        raise WSQError(f"WSQ encoder failed (NBIS code {code})")
    try:
        return ctypes.string_at(out, size.value)
    finally:
        nbis.free(out)


def decode(data: bytes, width: int, height: int) -> tuple[Image.Image, int | None]:
    """The pixels of a WSQ file whose header declares ``width`` × ``height`` (checked by the
    caller), decoded in a child process, and the resolution its NISTCOM comment declares."""
    command = [sys.executable, "-I", "-S", "-c", _CHILD, str(Path(_extension()).parent)]
    try:
        # our own interpreter and a fixed program; the untrusted bytes go in on stdin, and
        # NBIS's messages on stderr (which may quote bytes of the file) are dropped
        done = subprocess.run(command, input=data, capture_output=True,  # noqa: S603
                              timeout=DECODE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WSQError(f"WSQ decoder did not finish within {DECODE_TIMEOUT_S:g} s") from exc
    if done.returncode != 0:
        raise WSQError(f"WSQ decoder refused the file (exit status {done.returncode})")
    if len(done.stdout) < _HEADER.size:
        raise WSQError("WSQ decoder gave no image")
    got_width, got_height, ppi = _HEADER.unpack_from(done.stdout)
    pixels = done.stdout[_HEADER.size:]
    if (got_width, got_height) != (width, height) or len(pixels) != width * height:
        raise WSQError("WSQ image is not the size its header declares")
    return Image.frombytes("L", (width, height), pixels), (ppi if ppi > 0 else None)


def decode_trusted(data: bytes, max_width: int, max_height: int) -> Image.Image:
    """The 8-bit grey pixels of a WSQ file :func:`encode` wrote, decoded in this process; a
    header declaring more than ``max_width`` × ``max_height`` is refused before decoding.
    Never for a file from outside: that is :func:`decode`."""
    try:
        image = Image.open(io.BytesIO(data), formats=(FORMAT,))
        if image.width > max_width or image.height > max_height:
            raise WSQError(f"WSQ image declares {image.width}x{image.height} pixels; at most "
                           f"{max_width}x{max_height} expected")
        image.load()
    except WSQError:
        raise
    except Exception as exc:  # NBIS raises a bare Exception, the plugin OSError or IndexError
        raise WSQError(f"WSQ image cannot be decoded ({exc.__class__.__name__})") from exc
    if image.mode != "L":
        raise WSQError(f"WSQ image is mode {image.mode}, not 8-bit grey")
    return image
