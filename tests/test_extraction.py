"""Bulk extraction end to end: batching across videos, failures, resume, kill -9, torchrun, frame folders."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from media import write_video
from s2vs_cli.cli import app
from s2vs_cli.jobs.extract_features import extract_features
from s2vs_cli.storage.bookkeeping import ExtractionOptions
from s2vs_cli.media.inputs import collect_inputs
from s2vs_cli.runtime import Runtime
from s2vs_cli.storage.parts import parts_dir_for
from s2vs_cli.storage.store import FeatureStore, StoreIdentity
from s2vs_cli.media.video import decode_video

RANDOM = ["--backbone-weights", "random", "--pca", "random", "--precision", "fp32", "--dtype", "float32"]
IDENTITY = StoreIdentity("ResNet-50 random (seed 0)", "random (seed 0)", 1.0, 512, dtype="float32")
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("offline")  # conftest: no downloads, empty caches


@pytest.fixture(scope="module")
def runtime():
    runtime = Runtime.cpu()
    runtime.load_extractor("random", "random")
    return runtime


@pytest.fixture(scope="module")
def extractor(runtime):
    return runtime.extractor


def _clip(path: Path, seconds: int, seed: int, size=(72, 96)) -> Path:
    """A small synthetic clip at 4 fps: smooth random colour fields that change every frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (seconds * 4, 6, 8, 3)).astype(np.uint8)
    frames = [np.kron(b, np.ones((size[0] // 6, size[1] // 8, 1), np.uint8)) for b in base]
    return write_video(path, frames, rate=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for i, seconds in enumerate([3, 7, 1, 5, 2, 6]):
        _clip(folder / f"clip{i}.mp4", seconds, seed=i)
    return folder


def _read_all(path: Path) -> dict[str, np.ndarray]:
    with FeatureStore(path) as store:
        return {video_id: store.read(video_id).features.astype(np.float32) for video_id in store.ids()}


@pytest.fixture(scope="module")
def one_process(clips, runtime, tmp_path_factory) -> dict[str, np.ndarray]:
    """What one uninterrupted run in one process writes for all the clips (the reference of the crash and
    torchrun tests)."""
    output = tmp_path_factory.mktemp("one_process") / "clean.h5"
    extract_features(collect_inputs([clips]).inputs, output, runtime, _options())
    return _read_all(output)


@pytest.fixture(scope="module")
def one_at_a_time(clips, extractor) -> dict[str, np.ndarray]:
    """Each clip's features, the clip decoded and extracted on its own."""
    alone = {}
    for item in collect_inputs([clips]).inputs:
        decoded = decode_video(item.path, min_frames=0)  # the file keeps the frames as sampled (docs/METHOD.md §7)
        alone[item.video_id] = extractor.extract(torch.from_numpy(decoded.frames)).numpy()
    return alone


def _run(args: list[str]):
    return runner.invoke(app, args)


def _options(**kwargs) -> ExtractionOptions:
    return ExtractionOptions(**{"dtype": "float32", "workers": 0, "frames_per_batch": 16} | kwargs)


# --- the pipeline -------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_batches_across_videos_equal_one_video_at_a_time(clips, runtime, one_at_a_time, tmp_path, workers):
    items = collect_inputs([clips]).inputs
    output = tmp_path / "out.h5"
    summary = extract_features(items, output, runtime, _options(workers=workers))
    assert (summary.written, summary.failures, summary.videos_in_output) == (6, [], 6)
    assert summary.frames == 3 + 7 + 1 + 5 + 2 + 6
    stored = _read_all(output)
    assert stored.keys() == one_at_a_time.keys()
    for video_id, alone in one_at_a_time.items():
        assert stored[video_id].shape == alone.shape
        np.testing.assert_allclose(stored[video_id], alone, atol=2e-5)
    with FeatureStore(output) as store:
        record = store.read("clip1")
        np.testing.assert_array_equal(record.timestamps, np.arange(7.0))
        assert store.identity == IDENTITY and record.attrs["source"] == str(clips / "clip1.mp4")
    assert not parts_dir_for(output).exists()


def test_resume_skips_done_videos_and_overwrite_redoes_them(clips, runtime, tmp_path):
    items = collect_inputs([clips]).inputs
    output = tmp_path / "out.h5"
    extract_features(items[:2], output, runtime, _options())
    first = _read_all(output)
    again = extract_features(items, output, runtime, _options())
    assert (again.already_done, again.written, again.videos_in_output) == (2, 4, 6)
    for video_id, features in first.items():
        np.testing.assert_array_equal(_read_all(output)[video_id], features)
    redo = extract_features(items[:1], output, runtime, _options(overwrite=True))
    assert (redo.already_done, redo.written, redo.videos_in_output, redo.replaced) == (0, 1, 6, None)
    other = _seeded_runtime(1)  # another model: the file cannot hold both
    replaced = extract_features(items[:1], output, other, _options(overwrite=True))
    assert replaced.videos_in_output == 1 and "whitening 'random (seed 0)'" in replaced.replaced


def _seeded_runtime(seed: int) -> Runtime:
    runtime = Runtime.cpu(seed=seed)
    runtime.load_extractor("random", "random")
    return runtime


def test_a_run_with_another_model_is_refused(clips, runtime, tmp_path):
    items = collect_inputs([clips]).inputs[:1]
    extract_features(items, tmp_path / "out.h5", runtime, _options())
    with pytest.raises(Exception, match=r"holds features made differently: backbone 'ResNet-50 random \(seed 0\)'"):
        extract_features(items, tmp_path / "out.h5", _seeded_runtime(1), _options())
    with pytest.raises(Exception, match=r"fps 1.0 \(this run: 2.0\)"):
        extract_features(items, tmp_path / "out.h5", runtime, _options(fps=2.0))


# --- the command ------------------------------------------------------------------------------

def test_bad_videos_are_listed_and_the_good_ones_written(clips, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("clip0.mp4", "clip2.mp4"):
        (data / name).write_bytes((clips / name).read_bytes())
    (data / "empty.mp4").write_bytes(b"")
    (data / "text.mp4").write_text("not a video at all")
    whole = (clips / "clip1.mp4").read_bytes()
    (data / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    output = tmp_path / "out.h5"
    result = _run(["extract-features", str(data), "-o", str(output), "--json", "-j", "2", *RANDOM])
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    reasons = {f["video_id"]: f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"empty", "text", "truncated"}
    assert reasons["empty"] == "empty file (0 bytes)" and "not a video file" in reasons["text"]
    assert summary["written"] == 2 and summary["videos_in_output"] == 2
    assert set(_read_all(output)) == {"clip0", "clip2"}
    lines = (tmp_path / "out.h5.failed.tsv").read_text().splitlines()
    assert lines[0] == "video_id\tpath\treason" and [line.split("\t")[0] for line in lines[1:]] == sorted(reasons)


def test_missing_inputs_stop_before_any_work_unless_skipped(clips, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("clip0\nclip9\n")
    args = ["extract-features", "--dataset-path", str(clips), "--pattern", "{id}.mp4", "--list", str(ids),
            "-o", str(tmp_path / "out.h5"), *RANDOM]
    result = _run(args)
    assert result.exit_code == 1  # an input that cannot be used (README: exit status)
    assert "1 of 2 videos not found: 'clip9' (no video matches the pattern" in result.output
    assert "--skip-missing" in result.output and not (tmp_path / "out.h5").exists()
    result = _run(args + ["--skip-missing", "--json"])
    assert result.exit_code == 3
    assert [f["video_id"] for f in json.loads(result.stdout)["failures"]] == ["clip9"]
    assert set(_read_all(tmp_path / "out.h5")) == {"clip0"}


@pytest.mark.parametrize("command", ["extract-features", "extract-frames"])
def test_a_missing_video_exits_1(clips, tmp_path, command):
    result = _run([command, str(clips / "clip0.mp4"), str(tmp_path / "gone.mp4"), "-o", str(tmp_path / "out"),
                   *(RANDOM if command == "extract-features" else [])])
    assert result.exit_code == 1, result.output
    assert "1 of 2 videos not found: 'gone' (not found:" in result.output and not (tmp_path / "out").exists()


def test_a_rerun_with_nothing_to_do_says_so_in_plain_lines(clips, tmp_path):
    args = ["extract-features", str(clips / "clip2.mp4"), "-o", str(tmp_path / "one.h5"), "-j", "0", *RANDOM]
    first = _run(args)
    assert first.exit_code == 0, first.output
    assert "one.h5  (1 video)" in first.stdout
    again = _run(args)
    assert again.exit_code == 0 and "nothing to do: the video is already in" in again.output
    assert "0/0" not in again.output and "videos/s" not in again.output
    for line in first.output.splitlines() + again.output.splitlines():  # piped: no rich padding
        assert line == line.rstrip(), repr(line)


@pytest.mark.parametrize("command", ["extract-features", "extract-frames"])
def test_bulk_commands_are_placed_by_the_runtime(clips, tmp_path, monkeypatch, command):
    """Each rank's device and process group come from Runtime.start(distributed=True), nowhere else."""
    from s2vs_cli.errors import S2VSError

    calls = []

    def start(*args, **kwargs):
        calls.append((args, kwargs))
        raise S2VSError("stopped before any work")

    monkeypatch.setattr(Runtime, "start", start)
    result = _run([command, str(clips / "clip0.mp4"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "stopped before any work" in result.output
    (device, *_), options = calls[0]
    assert options["distributed"] is True and device == ("auto" if command == "extract-features" else "cpu")


def test_dataset_option_takes_a_benchmarks_ids(clips, tmp_path):
    annotations = Path(__file__).resolve().parents[2] / "shared" / "data" / "evve.pickle"
    if not annotations.exists():
        pytest.skip(f"{annotations} not found: the ../shared folder is not beside the checkout")
    from s2vs_cli.datasets import load_benchmark

    ids = load_benchmark("EVVE", annotations=annotations).video_ids()
    data = tmp_path / "evve"
    data.mkdir()
    for video_id, clip in zip(ids[:2], ("clip0.mp4", "clip2.mp4")):
        (data / f"{video_id}.mp4").write_bytes((clips / clip).read_bytes())
    result = _run(["extract-features", "--dataset", "EVVE", "--annotations", str(annotations), "--dataset-path",
                   str(data), "--pattern", "{id}.mp4", "--skip-missing", "--json", "-o", str(tmp_path / "e.h5"),
                   *RANDOM])
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["failed"], summary["requested"]) == (2, len(ids) - 2, len(ids))
    assert set(_read_all(tmp_path / "e.h5")) == set(ids[:2])


def test_config_file_and_print_config(tmp_path):
    config = tmp_path / "extract.yaml"
    config.write_text("frames_per_batch: 64\ndtype: float32\nworkers: 3\n")
    result = _run(["extract-features", "x.mp4", "-o", "o.h5", "--config", str(config), "--workers", "1",
                   "--print-config"])
    assert result.exit_code == 0
    assert "frames_per_batch: 64\n" in result.stdout and "workers: 1\n" in result.stdout and "dtype: float32" in result.stdout
    config.write_text("batch-sise: 64\n")
    result = _run(["extract-features", "x.mp4", "-o", "o.h5", "--config", str(config)])
    assert result.exit_code == 2 and "unknown key 'batch-sise'" in result.output


def test_a_second_run_on_the_same_output_is_refused(clips, runtime, tmp_path):
    from s2vs_cli.errors import S2VSError
    from s2vs_cli.storage.parts import LOCK_NAME
    from s2vs_cli.storage.bookkeeping import exclusive_lock

    output = tmp_path / "out.h5"
    with exclusive_lock(parts_dir_for(output) / LOCK_NAME, str(output)):  # a run in progress
        with pytest.raises(S2VSError, match=rf"{output} is being written by another run \(pid {os.getpid()}\)"):
            extract_features(collect_inputs([clips]).inputs[:1], output, runtime, _options())
    (tmp_path / ".out.h5.merging-123").write_bytes(b"x" * 100)  # a merge killed half-way
    extract_features(collect_inputs([clips]).inputs[:1], output, runtime, _options())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_ids_with_a_slash_are_stored_nested_and_resume(clips, tmp_path):
    data = tmp_path / "cc"
    for video_id, clip in (("1/1_1_Y", "clip0.mp4"), ("1/1_2_Y", "clip2.mp4")):
        (data / video_id).parent.mkdir(parents=True, exist_ok=True)
        (data / f"{video_id}.mp4").write_bytes((clips / clip).read_bytes())
    ids = tmp_path / "ids.txt"
    ids.write_text("1/1_1_Y\n1/1_2_Y\n")
    args = ["extract-features", "--dataset-path", str(data), "--pattern", "{id}.mp4", "--list", str(ids),
            "-o", str(tmp_path / "cc.h5"), "--json", *RANDOM]
    first = json.loads(_run(args).stdout)
    assert (first["written"], first["videos_in_output"]) == (2, 2)
    again = json.loads(_run(args).stdout)
    assert (again["already_done"], again["written"], again["videos_in_output"]) == (2, 0, 2)
    frames = ["extract-frames", "--dataset-path", str(data), "--pattern", "{id}.mp4", "--list", str(ids),
              "-o", str(tmp_path / "frames"), "--json"]
    assert json.loads(_run(frames).stdout)["written"] == 2
    assert len(list((tmp_path / "frames" / "1" / "1_2_Y").glob("*.jpg"))) == 1
    assert json.loads(_run(frames).stdout)["already_done"] == 2


@pytest.mark.parametrize("args, message", [
    (["--fps", "inf"], "fps must be between 0.001 and 1000"),
    (["-o", " "], "--output must name a file or folder"),
])
def test_bad_options_are_usage_errors(clips, tmp_path, args, message):
    result = _run(["extract-features", str(clips), "-o", str(tmp_path / "o.h5"), *RANDOM, *args])
    assert result.exit_code == 2 and message in result.output


def test_an_id_that_cannot_be_stored_is_refused_before_work(tmp_path):
    (tmp_path / "..mp4").write_bytes(b"")  # its stem, '.', names no HDF5 dataset
    result = _run(["extract-features", str(tmp_path / "..mp4"), "-o", str(tmp_path / "o.h5"), *RANDOM])
    assert result.exit_code == 2 and "its video id '.' is not a plain name" in result.output


# --- frame folders ------------------------------------------------------------------------------

def test_extract_frames_layout_and_resume(clips, tmp_path):
    out = tmp_path / "frames"
    result = _run(["extract-frames", str(clips / "clip1.mp4"), str(clips / "clip4.mp4"), "-o", str(out), "--json",
                   "-j", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 2
    files = sorted(p.name for p in (out / "clip1").iterdir())
    assert files == [f"{i:05d}.jpg" for i in range(7)]
    from PIL import Image

    with Image.open(out / "clip1" / "00000.jpg") as image:
        assert min(image.size) == 256 and image.size == (342, 256)  # 96x72 scaled, even sides (docs/METHOD.md §1)
    (out / ".clip0.partial-999999").mkdir()  # left by a killed run
    result = _run(["extract-frames", str(clips), "-o", str(out), "--json", "-j", "0"])
    summary = json.loads(result.stdout)
    assert (summary["already_done"], summary["written"]) == (2, 4)
    assert not (out / ".clip0.partial-999999").exists() and len(list((out / "clip0").iterdir())) == 3
    result = _run(["extract-frames", str(clips), "-o", str(out), "--fps", "2"])  # would mix two rates
    assert result.exit_code == 2
    assert "holds frames written differently: fps 1.0 (this run: 2.0)" in result.output


def test_png_frame_folders_give_the_same_features_as_the_videos(clips, tmp_path):
    frames = tmp_path / "frames"
    videos = [str(clips / f"clip{i}.mp4") for i in (0, 2, 4)]  # 6 of the 24 frames: the same check, less work
    assert _run(["extract-frames", *videos, "-o", str(frames), "--format", "png", "-q"]).exit_code == 0
    from_videos, from_frames = tmp_path / "v.h5", tmp_path / "f.h5"
    assert _run(["extract-features", *videos, "-o", str(from_videos), "-q", "-j", "0", *RANDOM]).exit_code == 0
    result = _run(["extract-features", str(frames), "--loader", "frames", "-o", str(from_frames), "-q", "-j", "0",
                   *RANDOM])
    assert result.exit_code == 0, result.output
    videos, folders = _read_all(from_videos), _read_all(from_frames)
    assert videos.keys() == folders.keys() == {"clip0", "clip2", "clip4"}
    for video_id in videos:
        np.testing.assert_array_equal(folders[video_id], videos[video_id])


# --- crashes and several processes ---------------------------------------------------------------

CRASHING_RUN = textwrap.dedent("""
    import sys, time
    from s2vs_cli.jobs.extract_features import extract_features
    from s2vs_cli.storage.bookkeeping import ExtractionOptions
    from s2vs_cli.media.inputs import collect_inputs
    from s2vs_cli.progress import CallbackProgress
    from s2vs_cli.runtime import Runtime

    clips, output = sys.argv[1], sys.argv[2]
    items = collect_inputs([clips]).inputs
    options = ExtractionOptions(dtype="float32", workers=0, frames_per_batch=4, part_videos=1)
    slow = CallbackProgress(update=lambda done, total: time.sleep(0.3))  # time to be killed mid-run
    runtime = Runtime.cpu()
    runtime.load_extractor("random", "random")
    extract_features(items, output, runtime, options, progress=slow)
""")


@pytest.mark.slow
def test_kill_9_mid_run_loses_nothing_and_resumes(clips, runtime, one_process, tmp_path):
    items = collect_inputs([clips]).inputs
    output = tmp_path / "crashed.h5"
    script = tmp_path / "run.py"
    script.write_text(CRASHING_RUN)
    process = subprocess.Popen([sys.executable, str(script), str(clips), str(output)])
    parts = parts_dir_for(output)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.h5"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(parts.glob("*.h5"))
    assert 2 <= len(finished) < 6 and not output.exists()
    for part in finished:  # every closed part is a readable file holding whole videos
        with h5py.File(part) as f:
            for video_id in f:
                assert f[video_id].shape == one_process[video_id].shape
    result = _run(["merge", str(output)])  # what is done so far, as one readable file
    assert result.exit_code == 0 and f"{len(finished)} videos" in result.stdout
    assert len(_read_all(output)) == len(finished) and not list(parts.glob("*.h5"))
    summary = extract_features(items, output, runtime, _options())
    assert summary.already_done == len(finished) and summary.written == 6 - len(finished)
    resumed, reference = _read_all(output), one_process
    assert sorted(resumed) == sorted(reference)
    for video_id in reference:
        np.testing.assert_allclose(resumed[video_id], reference[video_id], atol=2e-5)
    assert not parts.exists()


def test_merge_joins_files_and_refuses_nothing_to_merge(clips, runtime, tmp_path):
    items = collect_inputs([clips]).inputs
    for name, chunk in (("a.h5", items[:2]), ("b.h5", items[1:4])):
        extract_features(chunk, tmp_path / name, runtime, _options())
    result = _run(["merge", str(tmp_path / "all.h5"), str(tmp_path / "a.h5"), str(tmp_path / "b.h5")])
    assert result.exit_code == 0, result.output
    assert "4 videos (4 added from 2 file(s))" in result.stdout and "1 id(s) were in more than one file" in result.output
    assert sorted(_read_all(tmp_path / "all.h5")) == sorted(i.video_id for i in items[:4])
    result = _run(["merge", str(tmp_path / "none.h5")])
    assert result.exit_code == 1 and "nothing to merge" in result.output


@pytest.mark.slow
def test_torchrun_with_two_processes_gives_the_same_features(clips, one_process, tmp_path):
    two = tmp_path / "two.h5"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(29500 + os.getpid() % 1000), "-m", "s2vs_cli",
                               "extract-features", "-o", str(two), str(clips), "--json", "-j", "1", *RANDOM],
                              capture_output=True, text=True, env=env, timeout=300)
    assert launched.returncode == 0, launched.stderr
    summary = json.loads(launched.stdout.strip().splitlines()[-1])  # only rank 0 prints
    assert (summary["ranks"], summary["written"], summary["videos_in_output"]) == (2, 6, 6)
    a, b = one_process, _read_all(two)
    assert a.keys() == b.keys()
    for video_id in a:
        np.testing.assert_allclose(b[video_id], a[video_id], atol=2e-5)


# --- whitening ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_fit_pca_learns_from_unwhitened_features_and_feeds_pca(clips, tmp_path):
    raw, pca, white = tmp_path / "raw.h5", tmp_path / "pca.pth", tmp_path / "white.h5"
    base = ["--backbone-weights", "random", "--precision", "fp32", "-q", "-j", "0"]
    assert _run(["extract-features", str(clips), "-o", str(raw), "--pca", "none", *base]).exit_code == 0
    with FeatureStore(raw) as store:
        assert store.shape("clip1") == (7, 9, 3840) and store.identity.whitening == "none"
    result = _run(["fit-pca", str(raw), "-o", str(pca), "--max-vectors", "150", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["vectors"], summary["dims"]) == (150, 3840) and "eigenvalues are zero" in summary["warning"]
    state = torch.load(pca, weights_only=True)
    # Fitted on a random backbone's features: the file says so (issue 26), beside the published layout.
    assert set(state) == {"mean", "d", "V", "random_weights"} and state["V"].shape == (3840, 3840)
    assert _run(["extract-features", str(clips), "-o", str(white), "--pca", str(pca), *base]).exit_code == 0
    with FeatureStore(white) as store:
        assert store.shape("clip1") == (7, 9, 512)
    result = _run(["fit-pca", str(white), "-o", str(tmp_path / "again.pth")])
    assert result.exit_code == 1 and "already whitened" in result.output
