"""What the library asks of a decoder: the frame-source interface, and the registry that names each one.

A `FrameSource` reads one video's frames sampled at a fixed rate: it yields each frame (uint8 RGB, shaped
as S2VS shapes them) with its time, and once exhausted it knows the duration it covered, how many frames
and seconds were lost and any warnings about damage. Its class methods say which paths on the command line or under
a dataset folder are its inputs. PyAV video files (video.py) and frame folders (frames.py) implement it;
`--loader NAME` (config `loader`) picks one by its registry name.

Adding a source (a GPU decoder, a stream) is one new class plus one line in `SOURCES`; nothing else
changes. Sources run in decoding worker processes, so a source module must not import torch.
"""
from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

# Registry name (the --loader value) -> "module:Class", imported when first used, so a decoding worker
# imports only the source it runs.
SOURCES: dict[str, str] = {
    "video": "s2vs_cli.media.video:VideoFileSource",
    "frames": "s2vs_cli.media.frames:FrameFolderSource",
}


@dataclass(frozen=True)
class VideoInput:
    """One video to work on: its id (the key it is stored under) and where it is."""

    video_id: str
    path: Path


@dataclass
class InputSet:
    """The videos found, and what was named but could not be found: (id, where it was looked for, reason)."""

    inputs: list[VideoInput]
    missing: list[tuple[str, str, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # entries of given folders that are not inputs


class FrameSource(ABC):
    """One video's frames sampled at `fps`, resized to `short_side` and centre-cropped to `crop`.

    Iterate `frames()` once; `duration`, `lost_frames`, `lost_seconds`, `damaged` and `warnings` are complete
    when it is exhausted.
    Errors that make the whole input unreadable are raised as VideoDecodeError naming the input.
    """

    name: ClassVar[str]             # registry name, the --loader value
    noun: ClassVar[str]             # one input in messages: "video", "frame folder"
    default_pattern: ClassVar[str]  # where an id's input is under --dataset-path
    hint: ClassVar[str] = ""        # said when no input was found at all

    def __init__(self, path: str | os.PathLike, fps: float = 1.0, *, short_side: int = 256, crop: int = 224,
                 threads: int = 1):
        self.path, self.fps = str(path), fps
        self.short_side, self.crop, self.threads = short_side, crop, threads
        self.duration = 0.0             # seconds covered
        self.lost_frames = 0            # frames that could not be decoded and were skipped
        self.lost_seconds = 0.0         # the input ends this much before the duration it states (0: no, or unknown)
        self.damaged = False            # frames or seconds were lost, or the decoder reported errors
        self.warnings: list[str] = []   # what went wrong without stopping the read

    @abstractmethod
    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """Yield (uint8 RGB [crop, crop, 3] image, seconds from the start) for every sampled frame."""

    @classmethod
    @abstractmethod
    def find(cls, path: Path) -> InputSet:
        """The inputs an existing path named on the command line holds (a file, or a folder of them)."""

    @classmethod
    @abstractmethod
    def readable(cls, matches: list[Path]) -> list[Path]:
        """Of the paths a dataset pattern matched for one id, those this source reads (best first)."""

    @classmethod
    def id_of(cls, path: Path) -> str:
        """The video id a path names (the file stem; a folder's name for folder sources)."""
        return path.stem


def visible_entries(folder: Path) -> list[Path]:
    """A folder's entries without hidden ones, sorted (ConfigError when it cannot be listed)."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise ConfigError(f"{folder}: cannot list the folder ({e.strerror or e})") from None


def source_names() -> tuple[str, ...]:
    """Every registered source name, for help and error messages."""
    return tuple(SOURCES)


def source_class(name: str) -> type[FrameSource]:
    """The source class registered as `name` (ConfigError for an unknown name)."""
    if name not in SOURCES:
        raise ConfigError(f"unknown loader '{name}' (choose from {', '.join(SOURCES)})")
    module, _, class_name = SOURCES[name].partition(":")
    return getattr(importlib.import_module(module), class_name)


def open_source(name: str, path: str | os.PathLike, fps: float = 1.0, **options) -> FrameSource:
    """A source of kind `name` reading `path` at `fps` (`options`: short_side, crop, threads)."""
    return source_class(name)(path, fps, **options)
