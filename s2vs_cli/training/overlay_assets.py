"""The original's FT overlay assets (docs/METHOD.md §5): AugLy 1.0.0's fonts, each with its character set, and its
Twemoji images.

The original S2VS training code draws its text overlays from the .ttf files of `augly/assets/fonts` (364 fonts,
many scripts), each with the characters listed in the font's .pkl beside it, and its emoji overlays from
`augly/assets/twemojis/*/*.png` (872 images). s2vs takes the `augly` package for these data files only, as the
optional `train` extra (pip install 's2vs[train]'; a user who only compares and searches never needs it):
its directory is located with `importlib.util.find_spec`, which does not run its code, and nothing of it is
imported. The character sets are pickled lists of code points; they are read with an unpickler that refuses
every global, so a tampered file cannot run code.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFont

from ..errors import ConfigError

AUGLY_REQUIREMENT = "augly==1.0.0"                # the pyproject `train` extra's package that ships the assets
TRAIN_EXTRA = "pip install 's2vs[train]'"         # how a user installs it (`make install` does)


class OverlayAssetsError(ConfigError):
    """The overlay assets are missing or damaged."""


class _NoGlobals(pickle.Unpickler):
    """Builds only the pickle's own lists and numbers: any global (a class, a function) is refused."""

    def find_class(self, module: str, name: str) -> None:
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def read_charset(path: Path) -> tuple[int, ...]:
    """The code points listed in an AugLy character-set pickle (a plain list of ints), refusing anything else."""
    try:
        codes = _NoGlobals(io.BytesIO(path.read_bytes())).load()
    except Exception as e:  # damaged pickles fail with many types (UnpicklingError, EOFError, ValueError, ...)
        raise OverlayAssetsError(f"{path}: not a character-set file ({type(e).__name__}: {e})") from e
    if not isinstance(codes, list) or not codes or not all(type(c) is int and 0 <= c <= 0x10FFFF for c in codes):
        raise OverlayAssetsError(f"{path}: not a character-set file (expected a non-empty list of code points)")
    return tuple(codes)


def augly_assets_dir() -> Path:
    """`augly/assets` of the installed augly package, found without importing it."""
    spec = importlib.util.find_spec("augly")
    if spec is None or not spec.submodule_search_locations:
        raise OverlayAssetsError(f"training's overlays need the fonts and emoji images of {AUGLY_REQUIREMENT}, "
                                 f"which is not installed: {TRAIN_EXTRA} (or pip install '{AUGLY_REQUIREMENT}')")
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


@dataclass(frozen=True)
class OverlayFont:
    """One font of the set: its .ttf file and the code points its character set lists."""

    path: Path
    charset: tuple[int, ...]

    @property
    def name(self) -> str:
        """The file's name without .ttf, e.g. 'NotoSansThai-Regular'."""
        return self.path.stem

    def at(self, size: int) -> ImageFont.FreeTypeFont:
        """This font at `size` pixels (cached: a few hundred sizes of fonts are in use at any time)."""
        return _truetype(self.path, size)


@functools.lru_cache(maxsize=1024)
def _truetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """A FreeType font object of `path` at `size` pixels."""
    return ImageFont.truetype(str(path), size)


@dataclass(frozen=True)
class OverlayAssets:
    """The font files (sorted by name) and emoji image files (sorted by path) the FT overlays draw from."""

    root: Path
    font_files: tuple[Path, ...]
    emoji_files: tuple[Path, ...]

    def font(self, index: int) -> OverlayFont:
        """Font `index` of the set, with its character set (read once per process)."""
        return _font(self.font_files[index])

    def emoji(self, index: int) -> Image.Image:
        """Emoji `index` of the set as an RGBA image (read once per process)."""
        return _emoji(self.emoji_files[index])

    def emoji_as_opened(self, index: int) -> Image.Image:
        """Emoji `index` in its file's own mode, as the original uses it: most are palette ("P") images."""
        return _emoji_as_opened(self.emoji_files[index])


@functools.lru_cache(maxsize=None)
def _font(path: Path) -> OverlayFont:
    """The font at `path` with the character set of the .pkl beside it."""
    return OverlayFont(path, read_charset(path.with_suffix(".pkl")))


@functools.lru_cache(maxsize=None)
def _emoji(path: Path) -> Image.Image:
    """The RGBA image of an emoji file, its palette's transparency applied."""
    return _emoji_as_opened(path).convert("RGBA")


@functools.lru_cache(maxsize=None)
def _emoji_as_opened(path: Path) -> Image.Image:
    """An emoji file's image, loaded, in the file's mode (AugLy's 872 Twemoji PNGs of 72 x 72: 828 palette
    images with a tRNS transparency, 42 RGBA, 2 LA); its palette and transparency are kept."""
    try:
        with Image.open(path) as image:
            return image.copy()
    except OSError as e:
        raise OverlayAssetsError(f"{path}: not an emoji image ({e})") from e


@functools.lru_cache(maxsize=4)
def overlay_assets(root: Path | None = None) -> OverlayAssets:
    """The asset set under `root` (default: the installed augly's assets): fonts with a .pkl, and every emoji."""
    root = augly_assets_dir() if root is None else Path(root)
    # As the original: every .ttf of the font folder (each has its .pkl), and the PNGs one folder deep.
    fonts = tuple(sorted((root / "fonts").glob("*.ttf")))
    emojis = tuple(sorted((root / "twemojis").glob("*/*.png")))
    if not fonts or not emojis:
        raise OverlayAssetsError(f"{root}: no fonts (fonts/*.ttf) or no emoji images (twemojis/*/*.png); "
                                 f"reinstall '{AUGLY_REQUIREMENT}'")
    missing = [p.name for p in fonts if not p.with_suffix(".pkl").is_file()]
    if missing:
        raise OverlayAssetsError(f"{root / 'fonts'}: fonts without a character set (.pkl): {', '.join(missing[:5])}")
    return OverlayAssets(root, fonts, emojis)
