"""Text on the heatmap image: Pillow's default font, characters it lacks replaced, anchored and rotated text."""
from __future__ import annotations

import functools
import unicodedata

from PIL import Image, ImageDraw, ImageFont

TITLE_SIZE = 18
LABEL_SIZE = 14
TICK_SIZE = 12

# The default font only covers Latin letters; typographic characters that commonly appear in titles get an
# ASCII stand-in instead of a missing-glyph box.
_ASCII_STANDINS = {
    "—": "-", "–": "-", "−": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "↔": "<->", "×": "x",
}


@functools.cache
def default_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at `size` pixels (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        # Pillow older than 10.1 or built without FreeType: the small fixed-size bitmap font.
        return ImageFont.load_default()


def printable(text: str, font) -> str:
    """Text with characters the font cannot draw replaced by ASCII look-alikes, or '?' as a last resort."""
    missing = _glyph_signature(font, "\uffff")
    out = []
    for char in text:
        char = _ASCII_STANDINS.get(char, char)
        if len(char) == 1 and not char.isascii() and _glyph_signature(font, char) == missing:
            # "é" -> "e": drop accents the font lacks rather than print a box.
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            char = base if base and _glyph_signature(font, base) != missing else "?"
        out.append(char)
    return "".join(out)


@functools.cache
def _glyph_signature(font, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


def text_width(draw: ImageDraw.ImageDraw, text: str, font) -> int:
    """Width in pixels of `text`'s ink."""
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return right - left


def fit(draw: ImageDraw.ImageDraw, text: str, font, max_width: float) -> str:
    """Text shortened with an ellipsis until it is at most max_width pixels wide."""
    if text_width(draw, text, font) <= max_width:
        return text
    while len(text) > 1 and text_width(draw, text + "...", font) > max_width:
        text = text[:-1]
    return text.rstrip() + "..."


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, fill, anchor: str) -> None:
    """Draw text with its ink box anchored at xy: anchor is horizontal (l, m, r) then vertical (t, m, b)."""
    # Anchors are computed here because Pillow only supports them natively for FreeType fonts.
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = {"l": xy[0] - left, "m": xy[0] - (left + right) / 2, "r": xy[0] - right}[anchor[0]]
    y = {"t": xy[1] - top, "m": xy[1] - (top + bottom) / 2, "b": xy[1] - bottom}[anchor[1]]
    draw.text((round(x), round(y)), text, font=font, fill=fill)


def draw_vertical_text(image: Image.Image, xy: tuple[float, float], text: str, font, fill) -> None:
    """Draw text reading bottom to top, its left edge at xy[0] and centred vertically on xy[1]."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    mask = mask.rotate(90, expand=True)
    image.paste(fill, (int(xy[0]), round(xy[1] - mask.height / 2)), mask)
