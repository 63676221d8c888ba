"""Find the video file of a stored id under a folder, for the report's players and thumbnails.

A feature file or a saved result names videos by id; the report links the files. `VideoFinder` looks an id up
with a pattern (`{id}.*` by default, `{id}` standing for the id) at any depth below the folder. The folder is
listed once, so looking up thousands of ids costs one walk, not one walk each. An evaluation's videos are found
as its extraction found them instead (`benchmark_videos`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..datasets.registry import benchmark_class
from ..errors import ConfigError
from ..media.inputs import collect_inputs
from ..media.video import VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from ..config import EvaluateConfig

DEFAULT_PATTERN = "{id}.*"


class VideoFinder:
    """Video files of ids below `folder`, found by `pattern` ({id} standing for the id) at any depth."""

    def __init__(self, folder: str | Path, pattern: str | None = None):
        self.folder = Path(folder)
        self.pattern = pattern or DEFAULT_PATTERN
        if self.pattern.count("{id}") != 1:
            raise ConfigError(f"--pattern must contain {{id}} exactly once, e.g. '{{id}}.*' (got '{self.pattern}')")
        if os.path.isabs(self.pattern):
            raise ConfigError(f"--pattern is relative to the videos folder (got the absolute '{self.pattern}')")
        if not self.folder.is_dir():
            raise ConfigError(f"{self.folder}: videos folder not found" if not self.folder.exists()
                              else f"{self.folder}: is a file; give the folder holding the videos")
        prefix, suffix = self.pattern.replace("\\", "/").split("{id}")
        # Greedy and lazy: "{id}.*" on "clip.v2.mp4" offers both "clip.v2" and "clip" as the id.
        self._matchers = [re.compile(_glob_regex(prefix) + f"(?P<id>.+{lazy})" + _glob_regex(suffix))
                          for lazy in ("", "?")]
        self._index: dict[str, list[str]] | None = None

    def find(self, video_id: str) -> Path | None:
        """The file of `video_id` (a video file before any other, then the shallowest), or None."""
        if self._index is None:
            self._index = self._build_index()
        found = self._index.get(video_id)
        if not found:
            return None
        best = min(found, key=lambda p: (Path(p).suffix.lower() not in VIDEO_EXTENSIONS, p.count("/"), p))
        return self.folder / best

    def _build_index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for root, folders, files in os.walk(self.folder):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            where = Path(root).relative_to(self.folder).as_posix()
            for name in files:
                if name.startswith("."):
                    continue
                relative = name if where == "." else f"{where}/{name}"
                for video_id in self._ids_of(relative):
                    index.setdefault(video_id, []).append(relative)
        return index

    def _ids_of(self, relative: str) -> set[str]:
        """Every id the pattern gives this file, matched from the folder or from any folder below it."""
        ids = set()
        starts = [0] + [i + 1 for i, char in enumerate(relative) if char == "/"]
        for start in starts:
            for matcher in self._matchers:
                matched = matcher.fullmatch(relative, start)
                if matched:
                    ids.add(matched.group("id"))
        return ids


def _glob_regex(text: str) -> str:
    """A glob fragment as a regular expression: '*' and '?' stay within one path component."""
    return "".join("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in text)


def benchmark_videos(cfg: EvaluateConfig, ids: Iterable[str]) -> dict[str, Path]:
    """The video files of `ids` under --dataset-path, found as the evaluation's extraction found them (by
    --pattern, or the benchmark's own layout); none without --dataset-path or for folders of frames."""
    if cfg.dataset_path is None or cfg.loader != "video":
        return {}
    pattern = cfg.pattern or benchmark_class(cfg.dataset).video_pattern(cfg.loader)
    found = collect_inputs(dataset_path=cfg.dataset_path, pattern=pattern, ids=list(dict.fromkeys(ids)),
                           loader=cfg.loader)
    return {item.video_id: Path(item.path) for item in found.inputs}
