"""Frame transformations (FT, docs/METHOD.md §5) of the strong view, drawn for every frame: a text overlay, an icon
overlay and a Gaussian blur."""
from __future__ import annotations

import functools
import math
import string

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor

from ..config import AugmentationOptions
from .draws import chance, randint, uniform

TEXT_CHARACTERS = string.ascii_letters + string.digits + string.punctuation
TEXT_LENGTH = (2, 12)                             # characters of an overlaid string, uniform in this range
ICON_SHAPES = ("face", "star", "heart", "polygon")


@functools.lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's built-in scalable font at `size` pixels (cached: loading it costs more than drawing)."""
    return ImageFont.load_default(size=size)


def _colour(generator: torch.Generator) -> tuple[int, int, int]:
    """A random RGB colour."""
    return tuple(int(c) for c in torch.randint(0, 256, (3,), generator=generator))


def overlay_text(frame: Image.Image, options: AugmentationOptions, generator: torch.Generator) -> Image.Image:
    """A random short string in a random colour, size and opacity at a random place (may run off the frame)."""
    short = min(frame.size)
    size = max(1, int(short * uniform(generator, options.text_size_min, options.text_size_max)))
    length = randint(generator, *TEXT_LENGTH)
    text = "".join(TEXT_CHARACTERS[i] for i in torch.randint(0, len(TEXT_CHARACTERS), (length,),
                                                             generator=generator).tolist())
    colour = _colour(generator)
    alpha = int(uniform(generator, options.text_opacity_min, options.text_opacity_max) * 255 + 0.5)
    fx, fy = uniform(generator, 0.0, 1.0), uniform(generator, 0.0, 1.0)
    font = _font(size)
    # Shorten the string until it fits the width, as the original does (one glyph may still overflow).
    while len(text) > 1 and font.getlength(text) > frame.width:
        text = text[:-1]
    left, top, right, bottom = font.getbbox(text)
    x = fx * (frame.width - (right - left)) - left
    y = fy * (frame.height - (bottom - top)) - top
    # Drawing the glyphs' coverage into a mask and filling through it is alpha compositing in one pass.
    mask = Image.new("L", frame.size, 0)
    ImageDraw.Draw(mask).text((x, y), text, fill=alpha, font=font)
    frame = frame.copy()
    frame.paste(colour, (0, 0, *frame.size), mask)
    return frame


def _star(cx: float, cy: float, radius: float, points: int, turn: float) -> list[tuple[float, float]]:
    """Vertices of a star with `points` tips (inner radius 40% of the outer one), rotated by `turn`."""
    vertices = []
    for k in range(2 * points):
        r = radius if k % 2 == 0 else 0.4 * radius
        angle = turn + math.pi * k / points
        vertices.append((cx + r * math.sin(angle), cy - r * math.cos(angle)))
    return vertices


def _draw_icon(size: int, generator: torch.Generator) -> Image.Image:
    """An RGBA emoji-like glyph of side `size`: a face, a star, a heart or a regular polygon."""
    scale = 2  # drawn twice as large and shrunk: ImageDraw does not antialias shapes
    side = size * scale
    icon = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    shape = ICON_SHAPES[randint(generator, 0, len(ICON_SHAPES) - 1)]
    fill, detail = _colour(generator) + (255,), _colour(generator) + (255,)
    c, r = side / 2, side / 2 - 1
    if shape == "face":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=fill, outline=detail, width=max(1, side // 32))
        eye = r * 0.14
        for ex in (c - 0.35 * r, c + 0.35 * r):
            draw.ellipse((ex - eye, c - 0.3 * r - eye, ex + eye, c - 0.3 * r + eye), fill=detail)
        mouth = 0.55 * r
        draw.arc((c - mouth, c - mouth, c + mouth, c + mouth), 20, 160, fill=detail, width=max(1, side // 16))
    elif shape == "star":
        draw.polygon(_star(c, c, r, 5, uniform(generator, 0.0, 2 * math.pi / 5)), fill=fill, outline=detail)
    elif shape == "heart":
        lobe = r * 0.5
        draw.ellipse((c - 2 * lobe, c - 1.4 * lobe, c, c + 0.6 * lobe), fill=fill)
        draw.ellipse((c, c - 1.4 * lobe, c + 2 * lobe, c + 0.6 * lobe), fill=fill)
        draw.polygon([(c - 1.95 * lobe, c - 0.1 * lobe), (c + 1.95 * lobe, c - 0.1 * lobe), (c, c + r)], fill=fill)
    else:
        sides, turn = randint(generator, 3, 8), uniform(generator, 0.0, 2 * math.pi)
        draw.regular_polygon((c, c, r), sides, rotation=math.degrees(turn), fill=fill, outline=detail)
    return icon.resize((size, size), Image.Resampling.LANCZOS)


def overlay_icon(frame: Image.Image, options: AugmentationOptions, generator: torch.Generator) -> Image.Image:
    """An emoji-like glyph of random shape, colours, size and opacity at a random place inside the frame."""
    short = min(frame.size)
    size = max(1, int(short * uniform(generator, options.emoji_size_min, options.emoji_size_max)))
    icon = _draw_icon(size, generator)
    opacity = uniform(generator, options.emoji_opacity_min, options.emoji_opacity_max)
    x = int(uniform(generator, 0.0, 1.0) * (frame.width - size))
    y = int(uniform(generator, 0.0, 1.0) * (frame.height - size))
    alpha = icon.getchannel("A").point(lambda a: int(a * opacity + 0.5))
    frame = frame.copy()
    frame.paste(icon.convert("RGB"), (x, y), alpha)
    return frame


def frame_transforms(frames: Tensor, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """FT on uint8 [T, H, W, 3]: text, icon and blur, each with its own coin for every frame."""
    out = frames.contiguous().clone()
    for k in range(len(out)):
        text = chance(generator, options.text_p)
        icon = chance(generator, options.emoji_p)
        blur = chance(generator, options.blur_p)
        if not (text or icon or blur):
            continue  # most frames' round trip through PIL is skipped
        image = Image.fromarray(out[k].numpy())
        if text:
            image = overlay_text(image, options, generator)
        if icon:
            image = overlay_icon(image, options, generator)
        if blur:
            radius = uniform(generator, options.blur_radius_min, options.blur_radius_max)
            image = image.filter(ImageFilter.GaussianBlur(radius))
        out[k] = torch.from_numpy(np.array(image))  # a writable copy
    return out
