"""Issue 26, "a damaged video must not produce a confident answer": a file cut short (its container still states
the whole duration) is said to be damaged, with the seconds lost, in compare, search and extract-features, and
recorded per video in the store; --strict fails it; FFmpeg's own line never reaches the terminal."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av.logging
import h5py
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.storage.store import FeatureStore

RANDOM = ["--backbone-weights", "random", "--pca", "random"]
CUT_AT = 300_000  # bytes of car-detection.mp4 kept (of 2.8 MB): 2.4 s of the 30.2 s its header states
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("offline")  # conftest: no downloads, empty caches


@pytest.fixture(scope="module")
def truncated(videos_dir, tmp_path_factory) -> Path:
    """`head -c 300000 car-detection.mp4 > truncated.mp4`: the index (at the front) still says 30.2 s."""
    path = tmp_path_factory.mktemp("damaged") / "truncated.mp4"
    path.write_bytes((videos_dir / "car-detection.mp4").read_bytes()[:CUT_AT])
    return path


@contextmanager
def _offline_cache(folder: Path) -> Iterator[None]:
    """The offline settings of conftest's `offline`, for module fixtures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S2VS_OFFLINE", "1")
        patch.setenv("S2VS_HOME", str(folder / "s2vs-cache"))
        patch.setattr(torch.hub, "get_dir", lambda: str(folder / "hub"))
        yield


@contextmanager
def _terminal_output(folder: Path) -> Iterator[list[str]]:
    """What is written to the process's stdout and stderr (file descriptors 1 and 2, where FFmpeg prints)."""
    said: list[str] = []
    saved = [os.dup(1), os.dup(2)]
    with open(folder / "terminal.txt", "w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            said.append(sink.read().decode(errors="replace"))


@pytest.fixture(scope="module")
def compared(truncated, videos_dir, tmp_path_factory) -> tuple[dict, str]:
    """compare --json of the cut file and an intact clip, FFmpeg set to print its own log as the issue saw
    ("[mov,mp4,…] partial file": a host or another PyAV may do so): (the result, what reached the terminal)."""
    folder = tmp_path_factory.mktemp("compare")
    level = av.logging.get_level()
    av.logging.restore_default_callback()
    try:
        with _offline_cache(folder), _terminal_output(folder) as terminal:
            done = runner.invoke(app, ["compare", str(truncated), str(videos_dir / "walk.mkv"), *RANDOM,
                                       "--features-only", "--json"])
    finally:
        av.logging.set_level(level)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout), terminal[0] + done.stderr


@pytest.fixture(scope="module")
def extracted(truncated, videos_dir, tmp_path_factory) -> tuple[Path, str]:
    """extract-features of the cut file and an intact clip: (the output, its summary as printed)."""
    output = tmp_path_factory.mktemp("store") / "features.h5"
    with _offline_cache(output.parent):
        done = runner.invoke(app, ["extract-features", str(truncated), str(videos_dir / "walk.mkv"), "-o", str(output),
                                   *RANDOM, "--workers", "0"])
    assert done.exit_code == 0, done.output
    return output, " ".join((done.stdout + done.stderr).split())


def test_truncated_video_warns_in_compare(compared, truncated):
    result, _ = compared
    said = [w for w in result["warnings"] if w.startswith(str(truncated))]
    assert len(said) == 1 and "27.8 s lost" in said[0] and "of the 30.2 s it states" in said[0], result["warnings"]
    assert not any("walk.mkv" in w for w in result["warnings"])  # the intact clip does not warn


def test_truncated_video_no_raw_decoder_line_on_stderr(compared):
    result, terminal = compared
    assert "partial file" not in terminal, terminal
    assert "@ 0x" not in terminal and "swscaler" not in terminal  # nothing of FFmpeg's own printing
    # FFmpeg's line is in the warning instead
    assert any("FFmpeg: mov,mp4,m4a,3gp,3g2,mj2: stream 1, offset 0x49492: partial file" in w
               for w in result["warnings"]), result["warnings"]


def test_truncated_video_store_records_lost_seconds(extracted, tmp_path):
    output, _ = extracted
    with FeatureStore(output) as store:
        assert store.lost("truncated") == (0, pytest.approx(27.76, abs=0.01))
        assert store.lost("walk") == (0, 0.0)
        assert "partial file" in store.read("truncated").attrs["warnings"]
    # A file written before lost_seconds was recorded reads as nothing lost.
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as handle:
        handle.create_dataset("v", data=torch.zeros(2, 9, 4).numpy()).attrs["lost_frames"] = 0
    with FeatureStore(old) as store:
        assert store.lost("v") == (0, 0.0)


def test_truncated_video_warns_in_search(extracted):
    output, _ = extracted
    done = runner.invoke(app, ["search", "truncated", "walk", "--database", str(output), "--features-only",
                               "--exhaustive", "--json"])
    assert done.exit_code == 0, done.output
    results = {r["query"]: r for r in json.loads(done.stdout)["results"]}
    assert results["truncated"]["warnings"] == [
        "truncated: extracted from a damaged file that lost 27.8 s: its features cover only what was decoded"]
    # the damaged video is a hit of the other query: said there too
    assert results["walk"]["warnings"] == [
        "truncated: extracted from a damaged file that lost 27.8 s: its features cover only what was decoded"]


def test_truncated_video_extract_features_summary_lists_it(extracted):
    _, text = extracted
    assert "2 written, 0 already done, 0 failed" in text  # still written
    assert "1 damaged video written with only what could be decoded (--strict fails them):" in text
    assert "truncated: the file ends early: decoding stopped at 2.4 s of the 30.2 s it states, 27.8 s lost" in text
    assert "walk:" not in text


def test_truncated_video_strict_fails(truncated, tmp_path):
    output = tmp_path / "strict.h5"
    done = runner.invoke(app, ["extract-features", str(truncated), "-o", str(output), *RANDOM, "--workers", "0",
                               "--strict", "--json"])
    assert done.exit_code == 3, done.output
    summary = json.loads(done.stdout)
    assert (summary["written"], summary["failed"], summary["damaged_sources"]) == (0, 1, [])  # failed, not written
    assert summary["failures"][0]["video_id"] == "truncated" and "27.8 s lost" in summary["failures"][0]["reason"]
    with FeatureStore(output) as store:
        assert store.ids() == []
    assert "truncated" in (tmp_path / "strict.h5.failed.tsv").read_text()
