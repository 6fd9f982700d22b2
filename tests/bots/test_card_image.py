"""The card PNG: a QR a till can read, Cyrillic text, the same bytes for the same card."""

from __future__ import annotations

import io
import zlib

import zxingcpp
from PIL import Image, ImageChops, ImageDraw

from bots.dialog import card_image
from bots.dialog import png as png_file
from bots.dialog.card_image import PALETTE, RAMP, draw_card, font, render_card, render_qr

CARD = dict(merchant="Кофейня «Зерно»", balance="Баланс: 1 250 бонусов", caption="Карта")


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def fresh(number: str, **card: str) -> bytes:
    """A card's file made now (render_card keeps the last ones)."""
    return png_file.encode(draw_card(number, **card), PALETTE)


def glyph(face, ch: str) -> bytes:
    image = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(image).text((4, 4), ch, font=face, fill=255)
    return image.tobytes()


def test_qr_decodes_to_the_card_number():
    data = render_card("2123456789012", tier="Уровень: Золотой", **CARD)
    assert [r.text for r in zxingcpp.read_barcodes(png(data))] == ["2123456789012"]


def test_a_card_drawn_again_with_a_new_balance_keeps_its_own_qr():
    """The QR matrix is kept per card number: each card still reads as its own number."""
    for number, balance in (("2111111111116", "Баланс: 5 бонусов"), ("2222222222225", "Баланс: 5 бонусов"),
                            ("2111111111116", "Баланс: 90 бонусов")):
        data = fresh(number, merchant=CARD["merchant"], balance=balance, tier="Уровень: Базовый")
        assert [r.text for r in zxingcpp.read_barcodes(png(data))] == [number]


def test_same_card_same_bytes():
    first = fresh("2000000000008", tier="Уровень: Золотой", **CARD)
    second = fresh("2000000000008", tier="Уровень: Золотой", **CARD)
    assert first == second


def test_cyrillic_is_drawn_with_real_glyphs():
    """A font without Cyrillic draws every letter as the same missing-glyph box: the word
    "Золотой" would then look exactly like seven U+FFFF characters."""
    word = fresh("2123456789012", tier="Уровень: Золотой", **CARD)
    boxes = fresh("2123456789012", tier="Уровень: " + "\uffff" * 7, **CARD)
    assert ImageChops.difference(png(word).convert("L"), png(boxes).convert("L")).getbbox() is not None
    for face in (font(False, 26), font(True, 26)):
        missing = glyph(face, "\uffff")
        assert all(glyph(face, ch) != missing for ch in "ЗолтйЖЩЁё")


def test_a_long_merchant_name_is_shortened_not_cut_off_the_card():
    data = fresh("2123456789012", merchant="Очень длинное название " * 5,
                 balance="Баланс: 0 бонусов", tier="Уровень: Базовый")
    image = png(data)
    assert image.size == (720, 400)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == ["2123456789012"]


def test_the_file_holds_the_drawing_in_the_brand_palette():
    drawn = draw_card("2123456789012", tier="Уровень: Золотой", **CARD)
    image = png(fresh("2123456789012", tier="Уровень: Золотой", **CARD))
    assert image.mode == "P" and image.size == drawn.size
    assert image.getpalette()[:768] == RAMP
    assert image.tobytes() == drawn.tobytes()  # each level is its palette index
    assert image.convert("RGB").getpixel((0, 0)) == (24, 44, 84)  # the header, in BRAND
    assert image.convert("RGB").getpixel((719, 399)) == (255, 255, 255)


def test_a_card_file_is_small_and_any_zlib_reads_its_rows():
    """ISA-L compresses the rows: the stream is plain zlib (any PNG reader takes it), and a
    card stays a small upload (Telegram gets one with every "show my card")."""
    image = draw_card("2000000000015", tier="Уровень: Золотой", **CARD)
    data = render_card("2000000000015", tier="Уровень: Золотой", **CARD)
    assert len(data) < 16_000
    idat = data.index(b"IDAT")
    size = int.from_bytes(data[idat - 4:idat], "big")
    assert zlib.decompress(data[idat + 4:idat + 4 + size]) == png_file.scanlines(image)


def test_without_isa_l_zlib_makes_the_same_picture(monkeypatch):
    image = draw_card("2000000000015", tier="Уровень: Золотой", **CARD)
    with_isal = png_file.encode(image, PALETTE)
    monkeypatch.setattr(png_file, "compress", png_file.zlib_compress)
    with_zlib = png_file.encode(image, PALETTE)
    assert with_zlib != with_isal
    assert png(with_zlib).tobytes() == png(with_isal).tobytes() == image.tobytes()


def test_only_the_last_files_are_kept(monkeypatch):
    monkeypatch.setattr(card_image, "KEPT", 2)
    first = render_qr("https://t.me/testbot?start=ref_1")
    assert render_qr("https://t.me/testbot?start=ref_1") is first  # kept: not made again
    render_qr("https://t.me/testbot?start=ref_2")
    render_qr("https://t.me/testbot?start=ref_3")
    again = render_qr("https://t.me/testbot?start=ref_1")
    assert again == first and again is not first  # dropped, made anew
    assert len(card_image._kept) == 2


def test_invite_qr_decodes_to_the_link():
    link = "https://t.me/testbot?start=ref_ABCDEFGH"
    assert [r.text for r in zxingcpp.read_barcodes(png(render_qr(link)))] == [link]


def test_a_card_number_set_from_cached_digits_looks_as_drawn_whole():
    """The number is set glyph by glyph (the cheap way); it must be the very same pixels
    as the line drawn whole, and a number too wide for the card is still fitted."""
    from bots.dialog.card_image import _digits, _stamp

    every_pair = "".join(f"{n:02d}" for n in range(100))  # each digit after each digit
    for number in ("2123456789012", "2000 0000 1234", "7", " 12 ",
                   *(every_pair[i:i + 18] for i in range(0, 200, 17))):
        whole = Image.new("L", (520, 80), 255)
        mask, left, top = _stamp.__wrapped__(number, True, 36, 500)
        whole.paste(0, (10 + left, 50 + top), mask)
        set_ = Image.new("L", (520, 80), 255)
        assert _digits(set_, (10, 50), number, True, 36, 500, 0)
        assert ImageChops.difference(whole, set_).getbbox() is None, number
    untouched = Image.new("L", (520, 80), 255)
    assert not _digits(untouched, (10, 50), "1" * 40, True, 36, 500, 0)  # too wide: fitted
    assert not _digits(untouched, (10, 50), "№ 12", True, 36, 500, 0)  # not digits
    assert untouched.getbbox() is not None and ImageChops.invert(untouched).getbbox() is None
