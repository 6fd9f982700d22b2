"""PNG files of one-channel drawings, written here so the costly part can leave the event loop.

A card is drawn in one channel whose levels are the indices of a palette (see card_image), so
its PNG is the levels as they are: a palette image, each row led by filter byte 0. Most of a
card's cost is compressing those rows; `zlib.compress` lets go of the GIL while it works, so
`encode_off_loop` runs only that in a thread and the event loop goes on answering other chats
meanwhile, on another core. (Drawing a whole card in a thread would not help: its Python parts
hold the GIL, and the event loop, coming back from each wait, would queue behind them.)
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from concurrent.futures import Executor

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPRESS_LEVEL = 3  # as Pillow's default for PNG: level 6 halves the speed for a fifth less


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
    return assemble(image.size, palette, zlib.compress(scanlines(image), COMPRESS_LEVEL))


async def encode_off_loop(image: Image.Image, palette: bytes, executor: Executor | None = None
                          ) -> bytes:
    """As `encode`, the compression in `executor`'s threads (None: the event loop's default;
    the app gives one thread of its own: a card's rows take about a millisecond)."""
    rows = scanlines(image)
    compressed = await asyncio.get_running_loop().run_in_executor(
        executor, zlib.compress, rows, COMPRESS_LEVEL)
    return assemble(image.size, palette, compressed)
