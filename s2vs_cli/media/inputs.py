"""Which videos a bulk command works on: video ids and the files (or frame folders) that hold them.

Three ways to name them, as the original tool did and more: paths on the command line (a video file,
a folder of videos, a frame folder or a folder of frame folders; the id is the file stem or folder
name), or a dataset folder plus a pattern such as ``{id}/video.*`` with the ids from a list file, from
a benchmark's annotations, or discovered by the pattern itself. Every problem (duplicate ids, missing
files, an unreadable list) is found here, before any work starts.
"""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

LOADERS = ("video", "frames")
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .avi .mov .qt .flv .f4v .wmv .asf .mpg .mpeg .m2v .ts .mts .m2ts .vob .3gp .3g2 "
    ".ogv .ogg .dv .mxf .gif .y4m .h264 .264 .hevc .h265".split()
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
DEFAULT_PATTERNS = {"video": "{id}/video.*", "frames": "{id}"}  # the original tool's dataset layout
SHOWN = 5  # problems listed in one error line


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
    ignored: list[Path] = field(default_factory=list)  # files in given folders that are not videos / frames


def collect_inputs(paths: Sequence[str | Path] = (), loader: str = "video", dataset_path: str | Path | None = None,
                   pattern: str | None = None, id_list: str | Path | None = None,
                   ids: Sequence[str] | None = None) -> InputSet:
    """Resolve the command line's inputs to (id, path) pairs, in a stable order.

    `ids` are extra ids to look up in `dataset_path` (a benchmark's videos); with neither `ids` nor
    `id_list` the pattern itself discovers them. Raises ConfigError for contradictory options,
    unreadable list files and duplicate ids; missing inputs are returned for the caller to judge.
    """
    if loader not in LOADERS:
        raise ConfigError(f"unknown loader '{loader}' (choose from {', '.join(LOADERS)})")
    by_list = id_list is not None or ids is not None
    if paths and dataset_path is not None:
        raise ConfigError("give either paths or --dataset-path, not both")
    if not paths and dataset_path is None:
        if by_list:
            raise ConfigError("--list and --dataset name videos by id: add --dataset-path DIR to say where they are")
        raise ConfigError("no input: give video files or folders, or --dataset-path DIR")
    if pattern is not None and dataset_path is None:
        raise ConfigError("--pattern applies to --dataset-path; add --dataset-path DIR")

    if paths:
        result = _from_paths([Path(p) for p in paths], loader)
    else:
        root = Path(dataset_path)
        if not root.is_dir():
            raise ConfigError(f"{root}: dataset folder not found")
        pattern = pattern if pattern is not None else DEFAULT_PATTERNS[loader]
        _check_pattern(pattern)
        if by_list:
            wanted = list(ids or []) + (read_id_list(id_list) if id_list is not None else [])
            _refuse_duplicates([(i, Path(str(id_list or "the benchmark"))) for i in wanted], "listed")
            result = _from_pattern(root, pattern, wanted, loader)
        else:
            result = _discover(root, pattern, loader)
    _refuse_duplicates([(i.video_id, i.path) for i in result.inputs], "found")
    for item in result.inputs:
        problem = id_problem(item.video_id)
        if problem:
            raise ConfigError(f"{item.path}: its video id '{item.video_id}' {problem}; rename it")
    return result


def read_id_list(path: str | Path) -> list[str]:
    """Video ids from a text file: one per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first id
    except FileNotFoundError:
        raise ConfigError(f"{path}: id list not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: id list is a folder, not a text file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: id list is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read id list ({e.strerror or e})") from None
    ids = [line.strip() for line in text.splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise ConfigError(f"{path}: id list has no ids")
    for video_id in ids:
        problem = id_problem(video_id)
        if problem:
            raise ConfigError(f"{path}: id '{video_id}' {problem}")
    return ids


def id_problem(video_id: str) -> str | None:
    """Why `video_id` cannot name a video in a feature file or a frame folder, or None.

    '/' is allowed between names (CC_WEB_VIDEO's ids are 'set/name'; HDF5 nests them), but an
    id must not be empty, absolute, or hold '.', '..' or empty steps.
    """
    if not video_id:
        return "is empty"
    if "\\" in video_id:
        return "contains a backslash"
    steps = video_id.split("/")
    if any(step in ("", ".", "..") for step in steps):
        return "is not a plain name or 'a/b' path (empty, '.' or '..' steps)"
    return None


def is_frame_folder(path: Path) -> bool:
    """True when `path` is a folder holding image files directly."""
    try:
        return path.is_dir() and any(_is_image(entry) for entry in os.scandir(path))
    except OSError:
        return False


def _is_image(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS


def _is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _visible_entries(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise ConfigError(f"{folder}: cannot list the folder ({e.strerror or e})") from None


def _from_paths(paths: list[Path], loader: str) -> InputSet:
    """Command-line paths: files are videos; folders hold videos, or are (folders of) frame folders."""
    result = InputSet(inputs=[])
    for path in paths:
        if not path.exists():
            result.missing.append((path.stem if loader == "video" else path.name, str(path), "not found"))
        elif loader == "frames":
            if not path.is_dir():
                raise ConfigError(f"{path}: --loader frames takes frame folders, not files")
            if is_frame_folder(path):
                result.inputs.append(VideoInput(path.resolve().name, path))  # '.' is named by the folder
                continue
            for entry in _visible_entries(path):
                if is_frame_folder(entry):
                    result.inputs.append(VideoInput(entry.name, entry))
                else:
                    result.ignored.append(entry)
        elif path.is_dir():
            for entry in _visible_entries(path):
                if entry.is_file() and _is_video_file(entry):
                    result.inputs.append(VideoInput(entry.stem, entry))
                elif entry.is_symlink() and not entry.exists() and _is_video_file(entry):
                    result.missing.append((entry.stem, str(entry), "broken symbolic link"))
                else:
                    result.ignored.append(entry)
        else:
            result.inputs.append(VideoInput(path.stem, path))  # named explicitly: tried whatever its suffix
    return result


def _check_pattern(pattern: str) -> None:
    if pattern.count("{id}") != 1:
        raise ConfigError(f"--pattern must contain {{id}} exactly once, e.g. '{{id}}/video.*' (got '{pattern}')")
    if os.path.isabs(pattern):
        raise ConfigError(f"--pattern is relative to --dataset-path (got the absolute '{pattern}')")


def _from_pattern(root: Path, pattern: str, ids: list[str], loader: str) -> InputSet:
    """Look each id up with the pattern; an id matching nothing is missing, several is ambiguous."""
    result = InputSet(inputs=[])
    for video_id in ids:
        relative = pattern.replace("{id}", glob.escape(video_id))
        matches = [Path(m) for m in sorted(glob.glob(str(root / relative)))]
        matches = _usable(matches, loader)
        if not matches:
            where = str(root / pattern.replace("{id}", video_id))
            result.missing.append((video_id, where, f"no {'frame folder' if loader == 'frames' else 'video'} "
                                                    "matches the pattern"))
        elif len(matches) > 1:
            names = ", ".join(m.name for m in matches[:SHOWN])
            raise ConfigError(f"id '{video_id}' matches {len(matches)} files ({names}): make --pattern more specific")
        else:
            result.inputs.append(VideoInput(video_id, matches[0]))
    return result


def _usable(matches: list[Path], loader: str) -> list[Path]:
    """Keep the matches the loader can read; of several files prefer the ones with a video suffix."""
    if loader == "frames":
        return [m for m in matches if m.is_dir()]
    files = [m for m in matches if m.is_file()]
    videos = [m for m in files if _is_video_file(m)]
    return videos if len(files) > 1 and videos else files


def _discover(root: Path, pattern: str, loader: str) -> InputSet:
    """No id list: every path the pattern matches is a video, its id read back from the match."""
    prefix, suffix = pattern.split("{id}")
    id_glob = glob.escape(prefix) + "*" + suffix
    # The id is what the '*' in place of {id} matched; ids never contain a path separator.
    matcher = re.compile(re.escape(prefix) + r"([^/\\]+)" + _glob_to_regex(suffix) + "$")
    found: dict[str, list[Path]] = {}
    for match in sorted(glob.glob(str(root / id_glob))):
        relative = Path(match).relative_to(root).as_posix()
        parsed = matcher.match(relative)
        if parsed and not parsed.group(1).startswith("."):
            found.setdefault(parsed.group(1), []).append(Path(match))
    result = InputSet(inputs=[])
    for video_id, matches in found.items():
        matches = _usable(matches, loader)
        if len(matches) == 1:
            result.inputs.append(VideoInput(video_id, matches[0]))
        elif len(matches) > 1:
            names = ", ".join(m.name for m in matches[:SHOWN])
            raise ConfigError(f"id '{video_id}' matches {len(matches)} files ({names}): make --pattern more specific")
    if not result.inputs:
        raise ConfigError(f"nothing in {root} matches the pattern '{pattern}'")
    return result


def _glob_to_regex(text: str) -> str:
    """A glob fragment as a regex matching within one path component per '*'."""
    out = []
    for char in text:
        out.append({"*": r"[^/\\]*", "?": r"[^/\\]"}.get(char, re.escape(char)))
    return "".join(out)


def _refuse_duplicates(items: list[tuple[str, Path]], verb: str) -> None:
    seen: dict[str, Path] = {}
    clashes = []
    for video_id, path in items:
        if video_id in seen:
            clashes.append(f"'{video_id}' ({seen[video_id]} and {path})")
        else:
            seen[video_id] = path
    if clashes:
        more = f" and {len(clashes) - SHOWN} more" if len(clashes) > SHOWN else ""
        raise ConfigError(f"{len(clashes)} duplicate video id(s) {verb}: {'; '.join(clashes[:SHOWN])}{more}; "
                          "ids must be unique, they are the keys features are stored under")
