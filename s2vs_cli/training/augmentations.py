"""Training augmentations of S2VS (SPEC §5): the weak and the strong view of a clip, and video-in-video.

Every training item is a window of 2·W consecutive frames of one video (W = `window`, 32 in the paper).
It yields two views of W frames each, each starting at its own random frame:

- the *weak* view: a temporal crop, then one RandomResizedCrop (scale 0.8–1) and a horizontal flip
  drawn once for the whole clip, so its frames stay spatially consistent;
- the *strong* view: optionally a temporal transformation (TT) of the 2·W frames first, then the same
  crop and flip (scale 0.5–1), optionally RandAugment (GT) drawn once per clip, and optionally frame
  transformations (FT: text, icon, blur) drawn independently for every frame.

Video-in-video (ViV) is the last step; it needs the whole batch of strong clips, so it lives in
`video_in_video` and the training loop calls it on the stacked batch.

Clips are uint8 tensors [T, H, W, 3] (RGB, channels last), the layout the feature extractor takes.
Every random draw comes from the `torch.Generator` passed in, never from a global RNG, so a generator
seeded the same way gives bit-identical clips, in any process and any data-loading worker. The
probabilities and ranges are the fields of `AugmentationOptions` (config.py), with the paper's values.
"""
from __future__ import annotations

import functools
import math
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F  # RandAugment's own ops: bit-identical to torchvision's
from torchvision.transforms.v2 import functional as F2  # its resize has a fast uint8 path (about 15x faster)

from ..config import AugmentationOptions
from ..errors import ConfigError

AUGMENTATION_NAMES = ("GT", "FT", "TT", "ViV")
TEMPORAL_TRANSFORMS = ("shuffle_dropout", "fast_forward", "slow_motion", "reverse", "pause", "none")

CROP_RATIO = (3 / 4, 4 / 3)                       # aspect ratios RandomResizedCrop draws from (torchvision's)
RANDAUGMENT_BINS = 31                             # magnitudes 0..30, as torchvision's RandAugment
TEXT_CHARACTERS = string.ascii_letters + string.digits + string.punctuation
TEXT_LENGTH = (2, 12)                             # characters of an overlaid string, uniform in this range
ICON_SHAPES = ("face", "star", "heart", "polygon")
PREVIEW_GAP = 4                                   # pixels between the frames of a preview strip


# ---------------------------------------------------------------------------------------------
# Parsing the --augmentations option


def parse_augmentations(text: str) -> frozenset[str]:
    """'GT,FT,TT,ViV' (any subset, any order, case-insensitive, spaces ok; '' or 'none' = no augmentations)."""
    if text.strip().lower() in ("", "none"):
        return frozenset()
    canonical = {name.lower(): name for name in AUGMENTATION_NAMES}
    names = set()
    for token in text.split(","):
        token = token.strip()
        if not token:  # a stray comma ("GT,,FT" or "GT,") is harmless
            continue
        if token.lower() not in canonical:
            raise ConfigError(f"unknown augmentation '{token}'; valid: {', '.join(AUGMENTATION_NAMES)}")
        names.add(canonical[token.lower()])
    return frozenset(names)


# ---------------------------------------------------------------------------------------------
# Random draws, all from an explicit generator


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    """A float uniform in [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer uniform in [low, high] (both ends included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _chance(generator: torch.Generator, p: float) -> bool:
    """True with probability p (the coin is drawn even when p is 0 or 1, so later draws do not shift)."""
    return float(torch.rand((), generator=generator, dtype=torch.float64)) < p


# ---------------------------------------------------------------------------------------------
# Temporal crop and transformations (TT)


def temporal_crop(clip: Tensor, window: int, generator: torch.Generator) -> Tensor:
    """`window` consecutive frames at a random start, after doubling a short clip until it is long enough."""
    if len(clip) == 0:
        raise ValueError("cannot crop an empty clip")
    while len(clip) < window:
        clip = torch.cat([clip, clip])
    # As the original: the start is uniform in [0, max(len - window, 1) - 1], so the very last
    # possible start (len - window) is never drawn when the clip is longer than the window.
    start = _randint(generator, 0, max(len(clip) - window, 1) - 1)
    return clip[start:start + window]


def fast_forward(clip: Tensor, step: int) -> Tensor:
    """Every `step`-th frame, from the first."""
    return clip[::step]


def slow_motion(clip: Tensor) -> Tensor:
    """Every frame twice."""
    return clip.repeat_interleave(2, dim=0)


def reverse(clip: Tensor) -> Tensor:
    """The frames in reverse order."""
    return clip.flip(0)


def pause(clip: Tensor, start: int, duration: int) -> Tensor:
    """The clip with `duration` extra copies of frame `start` inserted before it (T + duration frames)."""
    index = torch.arange(len(clip))
    index = torch.cat([index[:start], index[start].repeat(duration), index[start:]])
    return clip[index]


def shuffle_dropout(clip: Tensor, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """Temporal shuffle-dropout: cut into segments of w frames, maybe shuffle them, drop (remove or blank) some."""
    frames = len(clip)
    if frames == 0:
        return clip
    w = _randint(generator, options.segment_min, options.segment_max)
    if frames < w:
        w = frames  # one segment of everything (the original does the same)
    count = frames // w  # the trailing `frames % w` frames are discarded, as in the original
    order = torch.arange(count)
    if _chance(generator, options.segment_shuffle_p):
        order = torch.randperm(count, generator=generator)
    # Per segment: 0 kept, 1 removed, 2 content replaced (the original's encoding, whose sum is the test below).
    dropped = torch.rand(count, generator=generator, dtype=torch.float64) < options.segment_drop_p
    replaced = torch.rand(count, generator=generator, dtype=torch.float64) < options.segment_replace_p
    mask = dropped.long() * (1 + replaced.long())
    # The original drops segments only when 0 < Σ mask < segments, which (a replaced segment counting 2)
    # also skips some draws that would keep frames, e.g. one replaced segment out of two. When it does
    # not drop, it still returns the trimmed and possibly shuffled clip; so do we. The test also makes
    # sure at least one segment survives, so the clip is never empty.
    if not 0 < int(mask.sum()) < count:
        mask.zero_()
    height, width, channels = clip.shape[1:]
    pieces = []
    for segment in order.tolist():
        if mask[segment] == 1:
            continue
        piece = clip[segment * w:(segment + 1) * w]
        if mask[segment] == 2:
            # Each frame of a replaced segment becomes uniform noise or black, decided frame by frame.
            piece = torch.zeros_like(piece)
            for k in range(len(piece)):
                if _chance(generator, options.noise_p):
                    piece[k] = torch.randint(0, 256, (height, width, channels), generator=generator,
                                             dtype=torch.uint8)
        pieces.append(piece)
    return torch.cat(pieces)


def temporal_transform(clip: Tensor, window: int, options: AugmentationOptions,
                       generator: torch.Generator) -> tuple[Tensor, str]:
    """TT: exactly one of shuffle-dropout, fast-forward, slow motion, reverse, pause or none; (clip, name)."""
    probabilities = (options.shuffle_dropout_p, options.fast_forward_p, options.slow_motion_p,
                     options.reverse_p, options.pause_p)
    u = _uniform(generator, 0.0, 1.0)
    name, cumulative = "none", 0.0  # "none" takes whatever probability the five leave
    for candidate, p in zip(TEMPORAL_TRANSFORMS, probabilities):
        cumulative += p
        if u < cumulative:
            name = candidate
            break
    if name == "shuffle_dropout":
        clip = shuffle_dropout(clip, options, generator)
    elif name == "fast_forward":
        clip = fast_forward(clip, _randint(generator, 2, 3))
    elif name == "slow_motion":
        clip = slow_motion(clip)
    elif name == "reverse":
        clip = reverse(clip)
    elif name == "pause":
        start = _randint(generator, 0, max(len(clip) - 2, 0))
        duration = _randint(generator, 0, max(window // 4 - 1, 0))
        clip = pause(clip, start, duration)
    return clip, name


# ---------------------------------------------------------------------------------------------
# Spatial transforms, drawn once per clip


def random_resized_crop_params(height: int, width: int, scale_min: float, scale_max: float,
                               generator: torch.Generator,
                               ratio: tuple[float, float] = CROP_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop, by torchvision's RandomResizedCrop algorithm with our generator."""
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * _uniform(generator, scale_min, scale_max)
        aspect = math.exp(_uniform(generator, log_low, log_high))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return _randint(generator, 0, height - h), _randint(generator, 0, width - w), h, w
    # Ten misses (a very elongated frame): the largest centred crop within the ratio range.
    frame_ratio = width / height
    if frame_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif frame_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _resize(frames: Tensor, height: int, width: int) -> Tensor:
    """uint8 [T, 3, h, w] -> [T, 3, height, width], bilinear with antialiasing (torchvision's uint8 path)."""
    return F2.resize(frames, [height, width], interpolation=InterpolationMode.BILINEAR, antialias=True)


def _crop_and_flip(clip: Tensor, scale_min: float, options: AugmentationOptions,
                   generator: torch.Generator) -> Tensor:
    """[T, H, W, 3] -> [T, 3, S, S]: one random resized crop and one flip coin for every frame."""
    top, left, h, w = random_resized_crop_params(clip.shape[1], clip.shape[2], scale_min, 1.0, generator)
    frames = clip[:, top:top + h, left:left + w].permute(0, 3, 1, 2)
    frames = _resize(frames, options.crop_size, options.crop_size)
    if _chance(generator, options.flip_p):
        frames = frames.flip(-1)
    return frames


# RandAugment's operations as torchvision defines them: (name, largest magnitude, signed). The magnitude
# of level m (0..30) is linspace(0, largest, 31)[m]; None: the operation takes no magnitude. Signed
# operations get a random sign.
_RANDAUGMENT_OPS = (
    ("Identity", None, False),
    ("ShearX", 0.3, True),
    ("ShearY", 0.3, True),
    ("TranslateX", 150.0 / 331.0, True),  # times the frame width
    ("TranslateY", 150.0 / 331.0, True),  # times the frame height
    ("Rotate", 30.0, True),
    ("Brightness", 0.9, True),
    ("Color", 0.9, True),
    ("Contrast", 0.9, True),
    ("Sharpness", 0.9, True),
    ("Posterize", None, False),           # bits kept: 8 - round(m / 7.5)
    ("Solarize", None, False),            # threshold: linspace(255, 0, 31)[m]
    ("AutoContrast", None, False),
    ("Equalize", None, False),
)


def _randaugment_magnitude(name: str, largest: float | None, level: int, height: int, width: int) -> float:
    """The magnitude of operation `name` at `level`, computed as torchvision does (float32 linspace)."""
    if name == "Posterize":
        return float(8 - round(level / ((RANDAUGMENT_BINS - 1) / 4)))
    if name == "Solarize":
        return float(torch.linspace(255.0, 0.0, RANDAUGMENT_BINS)[level])
    if largest is None:
        return 0.0
    if name == "TranslateX":
        largest *= width
    elif name == "TranslateY":
        largest *= height
    return float(torch.linspace(0.0, largest, RANDAUGMENT_BINS)[level])


def _randaugment_draw(num_ops: int, level: int, height: int, width: int,
                      generator: torch.Generator) -> list[tuple[str, float]]:
    """RandAugment's choices for one clip: `num_ops` (operation, signed magnitude) pairs."""
    draws = []
    for _ in range(num_ops):
        name, largest, signed = _RANDAUGMENT_OPS[_randint(generator, 0, len(_RANDAUGMENT_OPS) - 1)]
        magnitude = _randaugment_magnitude(name, largest, level, height, width)
        if signed and _chance(generator, 0.5):
            magnitude = -magnitude
        draws.append((name, magnitude))
    return draws


def _randaugment_apply(frames: Tensor, name: str, magnitude: float) -> Tensor:
    """One RandAugment operation on uint8 [T, 3, H, W], the same for every frame (torchvision's definitions)."""
    nearest = InterpolationMode.NEAREST
    if name == "ShearX":
        return F.affine(frames, angle=0.0, translate=[0, 0], scale=1.0, interpolation=nearest,
                        shear=[math.degrees(math.atan(magnitude)), 0.0], center=[0, 0])
    if name == "ShearY":
        return F.affine(frames, angle=0.0, translate=[0, 0], scale=1.0, interpolation=nearest,
                        shear=[0.0, math.degrees(math.atan(magnitude))], center=[0, 0])
    if name == "TranslateX":
        return F.affine(frames, angle=0.0, translate=[int(magnitude), 0], scale=1.0,
                        shear=[0.0, 0.0], interpolation=nearest)
    if name == "TranslateY":
        return F.affine(frames, angle=0.0, translate=[0, int(magnitude)], scale=1.0,
                        shear=[0.0, 0.0], interpolation=nearest)
    if name == "Rotate":
        return F.rotate(frames, magnitude, interpolation=nearest)
    if name == "Brightness":
        return F.adjust_brightness(frames, 1.0 + magnitude)
    if name == "Color":
        return F.adjust_saturation(frames, 1.0 + magnitude)
    if name == "Contrast":
        return F.adjust_contrast(frames, 1.0 + magnitude)
    if name == "Sharpness":
        return F.adjust_sharpness(frames, 1.0 + magnitude)
    if name == "Posterize":
        return F.posterize(frames, int(magnitude))
    if name == "Solarize":
        return F.solarize(frames, magnitude)
    if name == "AutoContrast":
        return F.autocontrast(frames)
    if name == "Equalize":
        return F.equalize(frames)
    return frames  # Identity


def randaugment(frames: Tensor, num_ops: int, magnitude: int, generator: torch.Generator) -> Tensor:
    """GT: RandAugment(num_ops, magnitude) on uint8 [T, 3, H, W], drawn once, applied to every frame."""
    height, width = frames.shape[-2:]
    for name, value in _randaugment_draw(num_ops, magnitude, height, width, generator):
        frames = _randaugment_apply(frames, name, value)
    return frames


# ---------------------------------------------------------------------------------------------
# Frame transforms (FT), drawn for every frame


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
    size = max(1, int(short * _uniform(generator, options.text_size_min, options.text_size_max)))
    length = _randint(generator, *TEXT_LENGTH)
    text = "".join(TEXT_CHARACTERS[i] for i in torch.randint(0, len(TEXT_CHARACTERS), (length,),
                                                             generator=generator).tolist())
    colour = _colour(generator)
    alpha = int(_uniform(generator, options.text_opacity_min, options.text_opacity_max) * 255 + 0.5)
    fx, fy = _uniform(generator, 0.0, 1.0), _uniform(generator, 0.0, 1.0)
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
    shape = ICON_SHAPES[_randint(generator, 0, len(ICON_SHAPES) - 1)]
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
        draw.polygon(_star(c, c, r, 5, _uniform(generator, 0.0, 2 * math.pi / 5)), fill=fill, outline=detail)
    elif shape == "heart":
        lobe = r * 0.5
        draw.ellipse((c - 2 * lobe, c - 1.4 * lobe, c, c + 0.6 * lobe), fill=fill)
        draw.ellipse((c, c - 1.4 * lobe, c + 2 * lobe, c + 0.6 * lobe), fill=fill)
        draw.polygon([(c - 1.95 * lobe, c - 0.1 * lobe), (c + 1.95 * lobe, c - 0.1 * lobe), (c, c + r)], fill=fill)
    else:
        sides, turn = _randint(generator, 3, 8), _uniform(generator, 0.0, 2 * math.pi)
        draw.regular_polygon((c, c, r), sides, rotation=math.degrees(turn), fill=fill, outline=detail)
    return icon.resize((size, size), Image.Resampling.LANCZOS)


def overlay_icon(frame: Image.Image, options: AugmentationOptions, generator: torch.Generator) -> Image.Image:
    """An emoji-like glyph of random shape, colours, size and opacity at a random place inside the frame."""
    short = min(frame.size)
    size = max(1, int(short * _uniform(generator, options.emoji_size_min, options.emoji_size_max)))
    icon = _draw_icon(size, generator)
    opacity = _uniform(generator, options.emoji_opacity_min, options.emoji_opacity_max)
    x = int(_uniform(generator, 0.0, 1.0) * (frame.width - size))
    y = int(_uniform(generator, 0.0, 1.0) * (frame.height - size))
    alpha = icon.getchannel("A").point(lambda a: int(a * opacity + 0.5))
    frame = frame.copy()
    frame.paste(icon.convert("RGB"), (x, y), alpha)
    return frame


def _frame_transforms(frames: Tensor, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """FT on uint8 [T, H, W, 3]: text, icon and blur, each with its own coin for every frame."""
    out = frames.contiguous().clone()
    for k in range(len(out)):
        text = _chance(generator, options.text_p)
        icon = _chance(generator, options.emoji_p)
        blur = _chance(generator, options.blur_p)
        if not (text or icon or blur):
            continue  # most frames' round trip through PIL is skipped
        image = Image.fromarray(out[k].numpy())
        if text:
            image = overlay_text(image, options, generator)
        if icon:
            image = overlay_icon(image, options, generator)
        if blur:
            radius = _uniform(generator, options.blur_radius_min, options.blur_radius_max)
            image = image.filter(ImageFilter.GaussianBlur(radius))
        out[k] = torch.from_numpy(np.array(image))  # a writable copy
    return out


# ---------------------------------------------------------------------------------------------
# The two views


def weak_view(clip: Tensor, window: int, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """The weak view: temporal crop, then one resized crop (scale weak_scale_min..1) and flip -> [window, S, S, 3]."""
    clip = temporal_crop(clip, window, generator)
    frames = _crop_and_flip(clip, options.weak_scale_min, options, generator)
    return frames.permute(0, 2, 3, 1).contiguous()


def strong_view(clip: Tensor, window: int, options: AugmentationOptions, augmentations: frozenset[str],
                generator: torch.Generator) -> Tensor:
    """The strong view: [TT], temporal crop, resized crop + flip, [GT], [FT per frame] -> [window, S, S, 3]."""
    if "TT" in augmentations:
        clip, _ = temporal_transform(clip, window, options, generator)
    clip = temporal_crop(clip, window, generator)
    frames = _crop_and_flip(clip, options.strong_scale_min, options, generator)
    if "GT" in augmentations:
        frames = randaugment(frames, options.randaugment_ops, options.randaugment_magnitude, generator)
    frames = frames.permute(0, 2, 3, 1).contiguous()
    if "FT" in augmentations:
        frames = _frame_transforms(frames, options, generator)
    return frames


# ---------------------------------------------------------------------------------------------
# Video-in-video (ViV), on the batch of strong clips


def viv_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pasted box: side ratio √(1 − λ), centred at (cy, cx), clipped."""
    ratio = math.sqrt(1 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    top, bottom = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    left, right = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    return top, bottom, left, right


def video_in_video(batch: Tensor, options: AugmentationOptions, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """ViV on uint8 [B, T, H, W, 3]: some clips pasted, shrunk, into another; (new batch, float32 [B, B] labels)."""
    size = len(batch)
    labels = torch.eye(size, dtype=torch.float32)
    out = batch.clone()
    if size < 2:
        return out, labels  # nothing to mix with
    height, width = batch.shape[2], batch.shape[3]
    for i in range(size):
        if not _chance(generator, options.viv_p):
            continue
        j = _randint(generator, 0, size - 2)
        j += j >= i  # uniform over the other slots
        lam = _uniform(generator, options.viv_lambda_min, options.viv_lambda_max)
        cy, cx = _randint(generator, 0, height - 1), _randint(generator, 0, width - 1)
        top, bottom, left, right = viv_box(height, width, lam, cy, cx)
        # Host and donor both come from the unmixed batch, so a clip mixed earlier never nests.
        mixed = batch[j].clone()
        if bottom > top and right > left:
            donor = _resize(batch[i].permute(0, 3, 1, 2), bottom - top, right - left)
            mixed[:, top:bottom, left:right] = donor.permute(0, 2, 3, 1)
        out[i] = mixed
        labels[i, j] = lam
    return out, labels


# ---------------------------------------------------------------------------------------------
# Preview


def _strip(clip: Tensor, frames: int) -> np.ndarray:
    """`frames` evenly spaced frames of a [T, H, W, 3] clip side by side, PREVIEW_GAP white pixels apart."""
    count = min(frames, len(clip))
    index = torch.linspace(0, len(clip) - 1, count).round().long()
    height, width = clip.shape[1:3]
    strip = np.full((height, count * width + (count - 1) * PREVIEW_GAP, 3), 255, dtype=np.uint8)
    for n, k in enumerate(index.tolist()):
        x = n * (width + PREVIEW_GAP)
        strip[:, x:x + width] = clip[k].cpu().numpy()
    return strip


def save_preview(weak: Tensor, strong: Tensor, path: str | Path, frames: int = 8) -> None:
    """One PNG: `frames` evenly spaced frames of the weak clip above the same of the strong clip."""
    rows = [_strip(weak, frames), _strip(strong, frames)]
    width = max(row.shape[1] for row in rows)
    canvas = np.full((rows[0].shape[0] + PREVIEW_GAP + rows[1].shape[0], width, 3), 255, dtype=np.uint8)
    canvas[:rows[0].shape[0], :rows[0].shape[1]] = rows[0]
    canvas[rows[0].shape[0] + PREVIEW_GAP:, :rows[1].shape[1]] = rows[1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
