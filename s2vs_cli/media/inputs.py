"""Which videos a bulk command works on: video ids and the files (or frame folders) that hold them.

Three ways to name them, as the original tool did and more: paths on the command line (a video file,
a folder of videos, a frame folder or a folder of frame folders; the id is the file stem or folder
name), or a dataset folder plus a pattern such as ``{id}/video.*`` with the ids from a list file, from
a benchmark's annotations, or discovered by the pattern itself. Which paths are inputs is the frame
source's to say (`--loader`, media/source.py). Every problem (duplicate ids, missing files, an unreadable
list) is found here, before any work starts.
"""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..storage.ids import nesting_clashes, nesting_reason
from .frames import is_frame_folder  # jobs/train.py's `loader auto` asks it here
from .source import FrameSource, InputSet, VideoInput, source_class

SHOWN = 5  # problems listed in one error line

__all__ = ["InputSet", "VideoInput", "collect_inputs", "id_problem", "is_frame_folder", "read_id_list"]


def collect_inputs(paths: Sequence[str | Path] = (), loader: str = "video", dataset_path: str | Path | None = None,
                   pattern: str | None = None, id_list: str | Path | None = None,
                   ids: Sequence[str] | None = None) -> InputSet:
    """Resolve the command line's inputs to (id, path) pairs, in a stable order.

    `ids` are extra ids to look up in `dataset_path` (a benchmark's videos); with neither `ids` nor
    `id_list` the pattern itself discovers them. Raises ConfigError for contradictory options,
    unreadable list files and duplicate ids; missing inputs are returned for the caller to judge.
    """
    source = source_class(loader)
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
        result = _from_paths([Path(p) for p in paths], source)
    else:
        root = Path(dataset_path)
        if not root.is_dir():
            raise ConfigError(f"{root}: dataset folder not found")
        pattern = pattern if pattern is not None else source.default_pattern
        _check_pattern(pattern)
        if by_list:
            wanted = list(ids or []) + (read_id_list(id_list) if id_list is not None else [])
            _refuse_duplicates([(i, Path(str(id_list or "the benchmark"))) for i in wanted], "listed")
            result = _from_pattern(root, pattern, wanted, source)
        else:
            result = _discover(root, pattern, source)
    _refuse_duplicates([(i.video_id, i.path) for i in result.inputs], "found")
    for item in result.inputs:
        problem = id_problem(item.video_id)
        if problem:
            raise ConfigError(f"{item.path}: its video id '{item.video_id}' {problem}; rename it")
    _refuse_nesting(result.inputs)
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


def _from_paths(paths: list[Path], source: type[FrameSource]) -> InputSet:
    """Command-line paths: each names an input, or a folder of them, as the source finds them."""
    result = InputSet(inputs=[])
    for path in paths:
        if not path.exists():
            result.missing.append((source.id_of(path), str(path), "not found"))
            continue
        found = source.find(path)
        result.inputs += found.inputs
        result.missing += found.missing
        result.ignored += found.ignored
    return result


def _check_pattern(pattern: str) -> None:
    if pattern.count("{id}") != 1:
        raise ConfigError(f"--pattern must contain {{id}} exactly once, e.g. '{{id}}/video.*' (got '{pattern}')")
    if os.path.isabs(pattern):
        raise ConfigError(f"--pattern is relative to --dataset-path (got the absolute '{pattern}')")


def _from_pattern(root: Path, pattern: str, ids: list[str], source: type[FrameSource]) -> InputSet:
    """Look each id up with the pattern; an id matching nothing is missing, several is ambiguous."""
    result = InputSet(inputs=[])
    for video_id in ids:
        relative = pattern.replace("{id}", glob.escape(video_id))
        matches = [Path(m) for m in sorted(glob.glob(str(root / relative)))]
        matches = source.readable(matches)
        if not matches:
            where = str(root / pattern.replace("{id}", video_id))
            result.missing.append((video_id, where, f"no {source.noun} matches the pattern"))
        elif len(matches) > 1:
            names = ", ".join(m.name for m in matches[:SHOWN])
            raise ConfigError(f"id '{video_id}' matches {len(matches)} files ({names}): make --pattern more specific")
        else:
            result.inputs.append(VideoInput(video_id, matches[0]))
    return result


def _discover(root: Path, pattern: str, source: type[FrameSource]) -> InputSet:
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
        matches = source.readable(matches)
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


def _refuse_nesting(inputs: list[VideoInput]) -> None:
    """Ids such as 'a' and 'a/b' cannot share a feature file (storage/ids.py): refused before any work."""
    clashes = nesting_clashes(item.video_id for item in inputs)
    if clashes:
        where = {item.video_id: item.path for item in inputs}
        first, second = clashes[0]
        more = f" (and {len(clashes) - 1} more such pairs)" if len(clashes) > 1 else ""
        raise ConfigError(f"video ids '{first}' ({where[first]}) and '{second}' ({where[second]}) cannot both be "
                          f"stored: {nesting_reason(first, second)}; rename one{more}")


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
