"""PNG files of one-channel drawings.

A card is drawn in one channel whose levels are the indices of a palette (see card_image), so
its PNG is the levels as they are: a palette image, each row led by filter byte 0. The rows are
compressed by ISA-L (Intel's deflate, the `isal` package) into the zlib stream PNG wants: a
card's 288 kB of rows take about 0.1 ms at level 1, into a file no bigger than zlib's level 3
makes in 0.7 ms (bench/README.md, "Card files"). That is cheap enough to stay on the event
loop: handing it to a thread cost as much as it saved. Where ISA-L has no wheels (pyproject's
marker) zlib does it, at level 3.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPRESS_LEVEL = 1  # ISA-L's 0-3; 1 and 2 give the same size here, 3 is ten times slower
ZLIB_LEVEL = 3  # without ISA-L: as Pillow's default; level 6 halves the speed for a fifth less


def zlib_compress(rows: bytes) -> bytes:
    return zlib.compress(rows, ZLIB_LEVEL)


try:
    from isal import isal_zlib
except ImportError:  # pragma: no cover - a platform without ISA-L's wheels
    compress: Callable[[bytes], bytes] = zlib_compress
else:
    def compress(rows: bytes) -> bytes:
        """The rows as a zlib stream, by ISA-L."""
        return isal_zlib.compress(rows, COMPRESS_LEVEL)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def scanlines(image: Image.Image) -> bytes:
    """The image's rows as PNG takes them: each a filter byte (0, none), then its levels."""
    if image.mode != "L":
        raise ValueError("a one-channel drawing (mode L) is expected")
    framed = Image.new("L", (image.width + 1, image.height), 0)
    framed.paste(image, (1, 0))
    return framed.tobytes()


def assemble(size: tuple[int, int], palette: bytes, compressed: bytes) -> bytes:
    """The PNG file: 8-bit palette indices, `palette` as RGB triples, the compressed rows."""
    header = struct.pack(">IIBBBBB", size[0], size[1], 8, 3, 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"PLTE", palette)
            + _chunk(b"IDAT", compressed) + _chunk(b"IEND", b""))


def encode(image: Image.Image, palette: bytes) -> bytes:
    """`image`'s levels as indices into `palette`, a PNG file."""
    return assemble(image.size, palette, compress(scanlines(image)))
