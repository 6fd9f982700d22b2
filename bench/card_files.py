"""CPU of one card file, in-process: drawing, then compressing its rows with zlib or ISA-L.

    /work/venv/bin/python bench/card_files.py [--cards 1000]

Every card has a new number (a new QR matrix), as in webhook.py, where nearly every press
is the first of its customer. Prints, per card, the milliseconds of each step and the size
of the file each compressor makes, zlib (level 1, and 3: Pillow's default and what the
product used before) and ISA-L (levels 0-2) side by side in one run, and checks that every
stream decompresses with zlib to the same rows.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isal import isal_zlib  # noqa: E402

from bots.dialog import card_image, png  # noqa: E402

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zlib 3": lambda rows: zlib.compress(rows, 3),
    "zlib 1": lambda rows: zlib.compress(rows, 1),
    "isal 0": lambda rows: isal_zlib.compress(rows, 0),
    "isal 1 (product)": png.compress,
    "isal 2": lambda rows: isal_zlib.compress(rows, 2),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cards", type=int, default=1000)
    args = parser.parse_args()
    spent: dict[str, float] = dict.fromkeys(("QR matrix", "drawing", "rows", *COMPRESSORS), 0.0)
    sizes = dict.fromkeys(COMPRESSORS, 0)
    for n in range(args.cards):  # one card at a time, as the server makes them
        number = f"27{10_000_000 + n:011d}"
        clock = time.perf_counter()
        card_image._qr_modules(number)
        spent["QR matrix"] += time.perf_counter() - clock
        clock = time.perf_counter()
        image = card_image.draw_card(number, merchant="Кофейня «Зерно»", balance="Баланс: 1 250 бонусов",
                                     tier="Уровень: Базовый", caption="Карта")
        spent["drawing"] += time.perf_counter() - clock
        clock = time.perf_counter()
        rows = png.scanlines(image)
        spent["rows"] += time.perf_counter() - clock
        for name, compress in COMPRESSORS.items():
            clock = time.perf_counter()
            stream = compress(rows)
            spent[name] += time.perf_counter() - clock
            sizes[name] += len(stream)
            if zlib.decompress(stream) != rows:
                print(f"{name}: card {number} does not decompress to its rows")
                return 1
    ms = {name: seconds / args.cards * 1000 for name, seconds in spent.items()}
    print(f"{args.cards} cards, {len(rows) / 1024:.0f} kB of rows each; ms per card: QR matrix "
          f"{ms['QR matrix']:.3f}, drawing (the QR kept) {ms['drawing']:.3f}, rows {ms['rows']:.3f}")
    for name in COMPRESSORS:
        print(f"  {name:17s} {ms[name]:6.3f} ms  {sizes[name] / args.cards / 1024:5.1f} kB"
              f"  x{ms['zlib 3'] / ms[name]:.1f} the speed of zlib 3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
