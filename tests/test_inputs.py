"""Input resolution of the bulk commands: paths, folders, dataset patterns, id lists, and their errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2vs_cli.errors import ConfigError
from s2vs_cli.media.inputs import collect_inputs, read_id_list
from s2vs_cli.media.source import SOURCES, FrameSource, InputSet, VideoInput, open_source, source_class


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _ids(result) -> list[str]:
    return [i.video_id for i in result.inputs]


def test_files_and_folders_of_videos(tmp_path):
    a = _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "dir" / "b.MKV")
    _touch(tmp_path / "dir" / "notes.txt")
    _touch(tmp_path / "dir" / ".hidden.mp4")
    result = collect_inputs([a, tmp_path / "dir"])
    assert _ids(result) == ["a", "b"]
    assert result.inputs[1].path == tmp_path / "dir" / "b.MKV"
    assert result.ignored == [tmp_path / "dir" / "notes.txt"]  # reported, not silently dropped
    assert result.missing == []


def test_missing_path_is_returned_not_raised(tmp_path):
    result = collect_inputs([tmp_path / "gone.mp4"])
    assert result.inputs == [] and result.missing == [("gone", str(tmp_path / "gone.mp4"), "not found")]


def test_duplicate_ids_are_an_error_naming_both_files(tmp_path):
    a = _touch(tmp_path / "x" / "clip.mp4")
    b = _touch(tmp_path / "y" / "clip.mkv")
    with pytest.raises(ConfigError, match=r"1 duplicate video id\(s\) found: 'clip' \(.*x/clip.mp4 and .*y/clip.mkv\)"):
        collect_inputs([a, b])


def test_dataset_pattern_with_id_list(tmp_path):
    for video_id in ("v1", "v2", "v3"):
        _touch(tmp_path / "data" / video_id / "video.mp4")
    _touch(tmp_path / "data" / "v2" / "video.info.json")  # a sidecar the glob also matches
    ids = _touch(tmp_path / "ids.txt", "# FIVR subset\nv2\n\nv1\nv9\n")
    result = collect_inputs(dataset_path=tmp_path / "data", id_list=ids)
    assert _ids(result) == ["v2", "v1"]  # list order
    assert result.inputs[0].path == tmp_path / "data" / "v2" / "video.mp4"
    assert [m[0] for m in result.missing] == ["v9"]
    assert result.missing[0][1] == str(tmp_path / "data" / "v9" / "video.*")


def test_pattern_discovers_ids_without_a_list(tmp_path):
    for name in ("a.mp4", "b.webm", "c.mp4"):
        _touch(tmp_path / name)
    result = collect_inputs(dataset_path=tmp_path, pattern="{id}.mp4")
    assert _ids(result) == ["a", "c"]


def test_ids_from_a_benchmark_and_a_list_combine(tmp_path):
    for video_id in ("q1", "d1", "d2"):
        _touch(tmp_path / f"{video_id}.mp4")
    ids = _touch(tmp_path / "more.txt", "d2\n")
    result = collect_inputs(dataset_path=tmp_path, pattern="{id}.mp4", ids=["q1", "d1"], id_list=ids)
    assert _ids(result) == ["q1", "d1", "d2"]


def test_ambiguous_pattern_is_an_error(tmp_path):
    _touch(tmp_path / "v1" / "video.mp4")
    _touch(tmp_path / "v1" / "video.mkv")
    with pytest.raises(ConfigError, match="id 'v1' matches 2 files .*make --pattern more specific"):
        collect_inputs(dataset_path=tmp_path, ids=["v1"])


def test_frame_folders(tmp_path):
    _touch(tmp_path / "frames" / "f1" / "00000.jpg")
    _touch(tmp_path / "frames" / "f2" / "00000.png")
    _touch(tmp_path / "frames" / "empty" / "readme.txt")
    _touch(tmp_path / "frames" / ".f3.partial-12" / "00000.jpg")  # a crashed extract-frames run
    result = collect_inputs([tmp_path / "frames"], loader="frames")
    assert _ids(result) == ["f1", "f2"]
    assert result.ignored == [tmp_path / "frames" / "empty"]
    single = collect_inputs([tmp_path / "frames" / "f1"], loader="frames")
    assert _ids(single) == ["f1"]
    by_pattern = collect_inputs(dataset_path=tmp_path / "frames", loader="frames", ids=["f2", "nope"])
    assert _ids(by_pattern) == ["f2"] and by_pattern.missing[0][0] == "nope"


@pytest.mark.parametrize("kwargs, message", [
    (dict(paths=["a.mp4"], dataset_path="."), "either paths or --dataset-path"),
    (dict(), "no input"),
    (dict(ids=["a"]), "add --dataset-path"),
    (dict(paths=["a.mp4"], pattern="{id}.mp4"), "--pattern applies to --dataset-path"),
    (dict(dataset_path=".", pattern="video.mp4"), r"must contain \{id\} exactly once"),
    (dict(dataset_path="/definitely/not/here"), "dataset folder not found"),
    (dict(paths=["a.mp4"], loader="audio"), "unknown loader 'audio'"),
])
def test_option_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        collect_inputs(**kwargs)


def test_frames_loader_refuses_a_file(tmp_path):
    with pytest.raises(ConfigError, match="takes frame folders, not files"):
        collect_inputs([_touch(tmp_path / "a.mp4")], loader="frames")


def test_id_list_errors(tmp_path):
    with pytest.raises(ConfigError, match="id list not found"):
        read_id_list(tmp_path / "none.txt")
    with pytest.raises(ConfigError, match="is a folder"):
        read_id_list(tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_id_list(tmp_path / "bin.txt")
    with pytest.raises(ConfigError, match="has no ids"):
        read_id_list(_touch(tmp_path / "blank.txt", "\n# only a comment\n"))
    with pytest.raises(ConfigError, match="id 'a/../b' is not a plain name"):
        read_id_list(_touch(tmp_path / "sep.txt", "a/../b\n"))
    assert read_id_list(_touch(tmp_path / "bom.txt", "\ufeffset/a\r\nb\r\n")) == ["set/a", "b"]  # CC_WEB-style
    _touch(tmp_path / "data" / "a.mp4")
    with pytest.raises(ConfigError, match="duplicate video id.*'a'"):
        collect_inputs(dataset_path=tmp_path / "data", pattern="{id}.mp4",
                       id_list=_touch(tmp_path / "dup.txt", "a\na\n"))


# --- the frame-source seam -------------------------------------------------------------------------

class ToneSource(FrameSource):
    """A made-up source (one flat grey frame per line of a .tone file): what a new decoder adds, and all."""

    name, noun, default_pattern = "tone", "tone file", "{id}.tone"

    def frames(self):
        lines = Path(self.path).read_text().split()
        for index, level in enumerate(lines):
            yield np.full((self.crop, self.crop, 3), int(level), np.uint8), index / self.fps
        self.duration = len(lines) / self.fps

    @classmethod
    def find(cls, path: Path) -> InputSet:
        files = sorted(path.glob("*.tone")) if path.is_dir() else [path]
        return InputSet([VideoInput(cls.id_of(p), p) for p in files])

    @classmethod
    def readable(cls, matches: list[Path]) -> list[Path]:
        return [m for m in matches if m.suffix == ".tone"]


def test_a_new_frame_source_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    from s2vs_cli.workers.decoding import decode_job

    monkeypatch.setitem(SOURCES, "tone", f"{__name__}:ToneSource")  # the one registry line
    _touch(tmp_path / "a.tone", "10 20 30")
    _touch(tmp_path / "b.mp4")
    found = collect_inputs([tmp_path], loader="tone")
    assert _ids(found) == ["a"] and found.ignored == []
    by_pattern = collect_inputs(dataset_path=tmp_path, loader="tone", ids=["a", "c"])
    assert _ids(by_pattern) == ["a"] and by_pattern.missing[0][2] == "no tone file matches the pattern"
    messages = list(decode_job((str(tmp_path / "a.tone"), "tone"), fps=2.0, threads=1))
    kind, frames, times = messages[0]
    assert kind == "frames" and frames.shape == (3, 224, 224, 3) and frames[2, 0, 0, 0] == 30
    np.testing.assert_array_equal(times, [0.0, 0.5, 1.0])
    assert messages[-1] == ("info", {"lost_frames": 0, "lost_seconds": 0.0, "damaged": False, "warnings": []})


def test_the_registry_names_the_sources_and_refuses_unknown_ones():
    assert source_class("video").noun == "video" and source_class("frames").default_pattern == "{id}"
    with pytest.raises(ConfigError, match=r"unknown loader 'gpu' \(choose from video, frames\)"):
        open_source("gpu", "x.mp4")
