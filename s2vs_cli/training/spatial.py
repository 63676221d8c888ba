"""Spatial augmentations, drawn once per clip (docs/METHOD.md §5): the random resized crop and flip of both views, and
RandAugment (GT) of the strong one, bit-identical to torchvision's operations but drawn from our generator."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F  # RandAugment's own ops: bit-identical to torchvision's
from torchvision.transforms.v2 import functional as F2  # its resize has a fast uint8 path (about 15x faster)

from ..config import AugmentationOptions
from .draws import chance, randint, uniform

CROP_RATIO = (3 / 4, 4 / 3)                       # aspect ratios RandomResizedCrop draws from (torchvision's)
RANDAUGMENT_BINS = 31                             # magnitudes 0..30, as torchvision's RandAugment


def random_resized_crop_params(height: int, width: int, scale_min: float, scale_max: float,
                               generator: torch.Generator,
                               ratio: tuple[float, float] = CROP_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop, by torchvision's RandomResizedCrop algorithm with our generator."""
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * uniform(generator, scale_min, scale_max)
        aspect = math.exp(uniform(generator, log_low, log_high))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return randint(generator, 0, height - h), randint(generator, 0, width - w), h, w
    # Ten misses (a very elongated frame): the largest centred crop within the ratio range.
    frame_ratio = width / height
    if frame_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif frame_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize(frames: Tensor, height: int, width: int) -> Tensor:
    """uint8 [T, 3, h, w] -> [T, 3, height, width], bilinear with antialiasing (torchvision's uint8 path)."""
    return F2.resize(frames, [height, width], interpolation=InterpolationMode.BILINEAR, antialias=True)


def crop_and_flip(clip: Tensor, scale_min: float, options: AugmentationOptions,
                   generator: torch.Generator) -> Tensor:
    """[T, H, W, 3] -> [T, 3, S, S]: one random resized crop and one flip coin for every frame."""
    top, left, h, w = random_resized_crop_params(clip.shape[1], clip.shape[2], scale_min, 1.0, generator)
    frames = clip[:, top:top + h, left:left + w].permute(0, 3, 1, 2)
    frames = resize(frames, options.crop_size, options.crop_size)
    if chance(generator, options.flip_p):
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
        name, largest, signed = _RANDAUGMENT_OPS[randint(generator, 0, len(_RANDAUGMENT_OPS) - 1)]
        magnitude = _randaugment_magnitude(name, largest, level, height, width)
        if signed and chance(generator, 0.5):
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
