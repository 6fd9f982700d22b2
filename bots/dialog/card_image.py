"""The loyalty card as a PNG: the QR of the card number, the number, balance, tier, merchant.

Drawn with qrcode (the matrix only) and Pillow, with the DejaVu fonts shipped beside this
module (Pillow's default font has no Cyrillic). The card is drawn in one channel (0 = ink,
255 = paper) and saved as a two-colour palette ramp (bots/dialog/png.py): a third of the bytes
of RGB to compress, which is most of the cost. The same input gives the same bytes, so the last
files are kept; so are the header of each merchant, the lines of text (tier and balance lines
repeat across customers), each digit (a card number is set from them) and the QR matrix of
each card number (a card shown again after a purchase needs a new file, not a new QR). A new
card takes about 0.6 ms on the event loop: its QR matrix 0.3 (pure Python, even with a fixed
mask that saves the mask search; 0 when kept), drawing 0.2, compressing 0.1 (png.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import cache, lru_cache
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from bots.dialog import png

FONTS = Path(__file__).with_name("fonts")
WIDTH, HEIGHT = 720, 400
HEADER = 72
QR_SIZE = 290
MARGIN = 28
INK, MUTED, PAPER = 0, 110, 255  # levels of the ramp from BRAND to WHITE
BRAND = (24, 44, 84)
WHITE = (255, 255, 255)
# Level g is BRAND blended towards WHITE by g/255.
RAMP = [round(b + (w - b) * g / 255) for g in range(256) for b, w in zip(BRAND, WHITE, strict=True)]
PALETTE = bytes(RAMP)
KEPT = 512  # files kept (a card is about 11 kB): a customer shows a card again and again
QR_KEPT = 4096  # QR matrices kept (about 1 kB each): a card's is the same whatever its balance


@cache
def font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    """A shipped DejaVu font (cached: loading a face costs more than drawing a card)."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONTS / name), size)


@lru_cache(maxsize=QR_KEPT)
def _qr_modules(data: str) -> tuple[int, bytes]:
    """The QR of `data` with its quiet zone: its side in modules and one level per module
    (qrcode is pure Python: the matrix is most of a card's drawing, and a card number's QR
    never changes)."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, mask_pattern=0)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    return len(matrix), bytes(0 if cell else 255 for row in matrix for cell in row)


def qr_image(data: str, size: int) -> Image.Image:
    """A black-on-white QR of `data` with its quiet zone, scaled to about `size` pixels."""
    n, levels = _qr_modules(data)
    small = Image.frombytes("L", (n, n), levels)
    scale = max(size // n, 1)
    return small.resize((n * scale, n * scale), Image.Resampling.NEAREST)


def _fit(draw: ImageDraw.ImageDraw, text: str, bold: bool, size: int, width: int
         ) -> tuple[str, ImageFont.FreeTypeFont]:
    """The text in the largest font (down to 60% of `size`) that fits `width`, else shortened."""
    for step in range(size, int(size * 0.6) - 1, -2):
        face = font(bold, step)
        if draw.textlength(text, font=face) <= width:
            return text, face
    face = font(bold, int(size * 0.6))
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text + "…", face


@lru_cache(maxsize=64)
def _base(merchant: str) -> Image.Image:
    """What every card of a merchant shares: the header with its name (drawn once, copied)."""
    image = Image.new("L", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, HEADER), fill=INK)
    title, face = _fit(draw, merchant, True, 34, WIDTH - 2 * MARGIN)
    draw.text((MARGIN, HEADER // 2), title, font=face, fill=PAPER, anchor="lm")
    return image


@lru_cache(maxsize=256)
def _stamp(text: str, bold: bool, size: int, width: int) -> tuple[Image.Image, int, int]:
    """A line of text fitted to `width`, as a coverage mask and its offset from the
    left-baseline point: lines repeat across cards ("Уровень: Базовый"), drawing them
    is most of a card's text cost."""
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    fitted, face = _fit(measure, text, bold, size, width)
    left, top, right, bottom = (int(v) for v in face.getbbox(fitted, anchor="ls"))
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)), 0)
    ImageDraw.Draw(mask).text((-left, -top), fitted, font=face, fill=255, anchor="ls")
    return mask, left, top


DIGITS = frozenset("0123456789 ")


@lru_cache(maxsize=64)
def _glyph(char: str, bold: bool, size: int) -> tuple[Image.Image, int, int, float]:
    """One character as a coverage mask, its offset from the pen on the baseline, its advance."""
    face = font(bold, size)
    left, top, right, bottom = (int(v) for v in face.getbbox(char, anchor="ls"))
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)), 0)
    ImageDraw.Draw(mask).text((-left, -top), char, font=face, fill=255, anchor="ls")
    return mask, left, top, face.getlength(char)


def _digits(image: Image.Image, xy: tuple[int, int], text: str, bold: bool, size: int,
            width: int, fill: int) -> bool:
    """A line of digits (a card number: new on every card) set glyph by glyph from cached
    masks, a sixth of drawing it whole, the same pixels (digits have equal advances and no
    kerning); False, drawing nothing, when it is not digits or does not fit `width`."""
    if not DIGITS.issuperset(text):
        return False
    glyphs = [_glyph(char, bold, size) for char in text]
    if sum(glyph[3] for glyph in glyphs) > width:
        return False
    pen = 0.0
    for char, (mask, left, top, advance) in zip(text, glyphs, strict=True):
        if char != " ":
            image.paste(fill, (xy[0] + round(pen) + left, xy[1] + top), mask)
        pen += advance
    return True


def _line(image: Image.Image, xy: tuple[int, int], text: str, bold: bool, size: int,
          width: int, fill: int) -> None:
    if _digits(image, xy, text, bold, size, width, fill):
        return
    mask, left, top = _stamp(text, bold, size, width)
    image.paste(fill, (xy[0] + left, xy[1] + top), mask)


def draw_card(number: str, *, merchant: str, balance: str, tier: str,
              caption: str = "") -> Image.Image:
    """The card, drawn: `balance` and `tier` are finished lines in the customer's language
    ("Баланс: 5 бонусов"), `caption` a small label above the number ("Карта")."""
    image = _base(merchant).copy()
    qr = qr_image(number, QR_SIZE)
    top = HEADER + (HEIGHT - HEADER - qr.height) // 2
    image.paste(qr, (MARGIN // 2, top))
    left = MARGIN // 2 + qr.height + MARGIN // 2
    width = WIDTH - left - MARGIN
    y = HEADER + 56
    if caption:
        _line(image, (left, y), caption, False, 22, width, MUTED)
        y += 48
    _line(image, (left, y), number, True, 36, width, INK)
    y += 70
    for line in (balance, tier):
        _line(image, (left, y), line, False, 26, width, INK)
        y += 46
    return image


def draw_qr(data: str, size: int = 480) -> Image.Image:
    """A plain QR (the invite link)."""
    return qr_image(data, size)


_kept: OrderedDict[Hashable, bytes] = OrderedDict()  # the last files made, the latest at the end


def _kept_file(key: Hashable) -> bytes | None:
    found = _kept.get(key)
    if found is not None:
        _kept.move_to_end(key)
    return found


def _keep(key: Hashable, data: bytes) -> bytes:
    _kept[key] = data
    while len(_kept) > KEPT:
        _kept.popitem(last=False)
    return data


def _file(key: Hashable, draw: Callable[[], Image.Image]) -> bytes:
    return _kept_file(key) or _keep(key, png.encode(draw(), PALETTE))


def render_card(number: str, *, merchant: str, balance: str, tier: str, caption: str = "") -> bytes:
    """The card as a PNG file (see `draw_card`)."""
    return _file(("card", number, merchant, balance, tier, caption), lambda: draw_card(
        number, merchant=merchant, balance=balance, tier=tier, caption=caption))


def render_qr(data: str, size: int = 480) -> bytes:
    """A plain QR as a PNG file (the invite link)."""
    return _file(("qr", data, size), lambda: draw_qr(data, size))
