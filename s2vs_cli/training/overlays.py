"""Frame transformations (FT, docs/METHOD.md §5) of the strong view, drawn for every frame: a text overlay, an emoji
overlay and a Gaussian blur.

The overlays follow the original S2VS training code (its datasets/transforms/overlay_text.py and
overlay_emoji.py) on the same assets, AugLy 1.0.0's fonts and Twemoji images (overlay_assets.py):

- text: a font uniform over the font set; SAMPLE_LENGTH characters drawn uniformly, with replacement, from
  that font's own character set; the longest prefix whose box (Pillow's old getsize: right and bottom of
  the text's bounding box from its origin) fits the frame is the most that fits, and the text is a prefix
  of uniform length 1..that most. Nothing is drawn when not even one character fits, when all
  SAMPLE_LENGTH - 1 fit, or when FreeType (or raqm, the layout engine) fails on a glyph (as the original).
- emoji: an image uniform over the emoji set, scaled by size * min(W / w, H / h), placed inside the frame.
  By default as the original, which opens the PNG without converting it: a palette image (828 of the 872)
  is resized nearest-neighbour (Pillow's rule for "P", whatever the filter asked) and has no "A" band, so
  its mask is the opacity alone and its whole square is pasted, the transparent pixels (about 31% of the
  square) in the colour their palette entry holds: black for 27% of them, the emoji's edge colours spread
  outward for the rest. RGBA and LA images (44) are resized bilinear and pasted through their alpha channel
  times the opacity. With overlay_emoji_alpha, every image is converted to RGBA first, so only the emoji's
  own pixels are blended.

Every draw comes from the generator passed in, so a seeded generator gives the same overlays anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor

from ..config import AugmentationOptions
from .draws import chance, randint, uniform
from .overlay_assets import OverlayAssets, OverlayFont, overlay_assets

SAMPLE_LENGTH = 100                               # characters drawn per text overlay before its length is chosen


def _colour(generator: torch.Generator) -> tuple[int, int, int]:
    """A random RGB colour."""
    return tuple(int(c) for c in torch.randint(0, 256, (3,), generator=generator))


def _text_box(font: ImageFont.FreeTypeFont, text: str) -> tuple[int, int]:
    """(width, height) of `text` as Pillow < 10's getsize gave them: its bounding box's right and bottom."""
    _, _, right, bottom = font.getbbox(text)
    return right, bottom


def most_that_fits(font: ImageFont.FreeTypeFont, sample: str, width: int, height: int) -> int:
    """The original's count of leading characters of `sample` that fit width x height (0: none, or all of them)."""
    for i in range(1, len(sample)):
        text_width, text_height = _text_box(font, sample[:i])
        if text_width > width or text_height > height:
            return i - 1
    return 0  # the original's loop never finds a limit here, and so draws nothing


@dataclass(frozen=True)
class TextOverlay:
    """One drawn text overlay: font, size in pixels, the sampled characters, the most that fit and the text."""

    font: OverlayFont
    size: int
    sample: str
    most: int                     # leading characters of `sample` that fit (0: nothing is drawn)
    text: str                     # sample[:length], length uniform in 1..most ('' when most is 0)
    xy: tuple[float, float]       # top-left of the text's origin in the frame
    colour: tuple[int, int, int]
    alpha: int


def draw_text(width: int, height: int, options: AugmentationOptions, generator: torch.Generator,
              assets: OverlayAssets | None = None) -> TextOverlay:
    """The random draws of one text overlay on a width x height frame, in the original's order."""
    assets = assets or overlay_assets()
    font = assets.font(randint(generator, 0, len(assets.font_files) - 1))
    size = max(1, int(min(width, height) * uniform(generator, options.text_size_min, options.text_size_max)))
    codes = torch.randint(0, len(font.charset), (SAMPLE_LENGTH,), generator=generator).tolist()
    sample = "".join(chr(font.charset[c]) for c in codes)
    image_font = font.at(size)
    try:
        most = most_that_fits(image_font, sample, width, height)
    except (OSError, RuntimeError):  # a glyph FreeType ("invalid composite glyph") or raqm cannot lay out:
        most = 0                     # the original draws nothing
    length = randint(generator, 1, most) if most else 0
    text = sample[:length]
    text_width, text_height = _text_box(image_font, text) if text else (0, 0)
    fx, fy = uniform(generator, 0.0, 1.0), uniform(generator, 0.0, 1.0)
    alpha = int(uniform(generator, options.text_opacity_min, options.text_opacity_max) * 255 + 0.5)
    colour = _colour(generator)
    return TextOverlay(font, size, sample, most, text, (fx * (width - text_width), fy * (height - text_height)),
                       colour, alpha)


def overlay_text(frame: Image.Image, options: AugmentationOptions, generator: torch.Generator,
                 assets: OverlayAssets | None = None) -> Image.Image:
    """A random text in a random font, colour, size and opacity at a random place inside the frame."""
    overlay = draw_text(frame.width, frame.height, options, generator, assets)
    if not overlay.text:
        return frame
    # Drawing the glyphs' coverage into a mask and filling through it is alpha compositing in one pass.
    mask = Image.new("L", frame.size, 0)
    ImageDraw.Draw(mask).text(overlay.xy, overlay.text, fill=overlay.alpha, font=overlay.font.at(overlay.size))
    frame = frame.copy()
    frame.paste(overlay.colour, (0, 0, *frame.size), mask)
    return frame


@dataclass(frozen=True)
class EmojiOverlay:
    """One drawn emoji overlay: which image, its size in pixels, its place and opacity."""

    index: int
    size: tuple[int, int]
    xy: tuple[int, int]
    opacity: float


def draw_emoji(width: int, height: int, options: AugmentationOptions, generator: torch.Generator,
               assets: OverlayAssets | None = None) -> EmojiOverlay:
    """The random draws of one emoji overlay on a width x height frame, in the original's order."""
    assets = assets or overlay_assets()
    index = randint(generator, 0, len(assets.emoji_files) - 1)
    emoji_width, emoji_height = assets.emoji(index).size
    scale = min(width / emoji_width, height / emoji_height) * uniform(generator, options.emoji_size_min,
                                                                      options.emoji_size_max)
    size = (max(1, int(emoji_width * scale)), max(1, int(emoji_height * scale)))
    fx, fy = uniform(generator, 0.0, 1.0), uniform(generator, 0.0, 1.0)
    opacity = uniform(generator, options.emoji_opacity_min, options.emoji_opacity_max)
    return EmojiOverlay(index, size, (int(fx * (width - size[0])), int(fy * (height - size[1]))), opacity)


def overlay_emoji(frame: Image.Image, options: AugmentationOptions, generator: torch.Generator,
                  assets: OverlayAssets | None = None) -> Image.Image:
    """A random emoji image of random size and opacity at a random place inside the frame (the module's
    docstring: the original's opaque squares behind palette images, or true alpha)."""
    assets = assets or overlay_assets()
    overlay = draw_emoji(frame.width, frame.height, options, generator, assets)
    emoji = assets.emoji(overlay.index) if options.overlay_emoji_alpha else assets.emoji_as_opened(overlay.index)
    emoji = emoji.resize(overlay.size, Image.Resampling.BILINEAR)  # Pillow resizes "P" images nearest
    try:  # the original's mask: the alpha channel times the opacity, truncated to an integer...
        mask = Image.fromarray((np.asarray(emoji.getchannel("A")) * overlay.opacity).astype(np.uint8))
    except ValueError:  # ...or, for an image without an "A" band (palette), the opacity over its whole square
        mask = Image.new("L", emoji.size, int(overlay.opacity * 255))
    # Pasted into RGBA as the original: a palette or LA image is converted to RGBA for it, and the blend is the
    # same on every band, so the RGB result is the original's.
    out = frame.convert("RGBA")
    out.paste(emoji, overlay.xy, mask)
    return out.convert("RGB")


def frame_transforms(frames: Tensor, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """FT on uint8 [T, H, W, 3]: text, emoji and blur, each with its own coin for every frame."""
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
            image = overlay_emoji(image, options, generator)
        if blur:
            radius = uniform(generator, options.blur_radius_min, options.blur_radius_max)
            image = image.filter(ImageFilter.GaussianBlur(radius))
        out[k] = torch.from_numpy(np.array(image))  # a writable copy
    return out
