"""Frames left out of matching: low-information frames, a collection's boilerplate (CommonFrames), the kept
frames' times, and search / compare with and without --keep-common-frames."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.scoring.common_frames import LOW_INFORMATION, kept_frames, low_information, mean_direction, region_coherence
from s2vs_cli.scoring.common_frames_fit import fit_common_frames
from s2vs_cli.scoring.common_frames_index import FILE, common_frames_of_index
from s2vs_cli.storage.frame_descriptors import frame_descriptors
from s2vs_cli.storage.index import index_dir_for, open_index
from tests.test_search import write_store

runner = CliRunner()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def boilerplate_videos(seed: int = 0, count: int = 24, intro_in: int = 12, dims: int = 64, regions: int = 9,
                       shared: float = 3.0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random videos [T, regions, dims] sharing one direction of weight `shared` (as random weights' features
    do); the first `intro_in` open with the same 3-frame intro (lightly re-encoded); 'pair-a' and 'pair-b'
    share 6 frames."""
    rng = np.random.default_rng(seed)
    base = shared * _unit(rng.standard_normal(dims))
    intro = rng.standard_normal((3, regions, dims))
    videos = {}
    for number in range(count):
        frames = rng.standard_normal((int(rng.integers(10, 16)), regions, dims))
        if number < intro_in:
            frames[:3] = intro + 0.05 * rng.standard_normal(intro.shape)
        videos[f"v{number:02d}"] = _unit(base + frames)
    copied = rng.standard_normal((6, regions, dims))
    videos["pair-a"] = _unit(base + np.concatenate([rng.standard_normal((4, regions, dims)), copied]))
    videos["pair-b"] = _unit(base + np.concatenate([copied + 0.05 * rng.standard_normal(copied.shape),
                                                    rng.standard_normal((5, regions, dims))]))
    return videos, base


def descriptors_of(videos: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    descriptors = [frame_descriptors(v) for v in videos.values()]
    return np.concatenate(descriptors), np.repeat(np.arange(len(descriptors)), [len(d) for d in descriptors])


def test_an_intro_in_many_videos_is_common_a_frame_in_two_is_not():
    videos, _ = boilerplate_videos()
    common = fit_common_frames(*descriptors_of(videos))
    assert len(common.prototypes) >= 1 and common.videos.max() == 12  # the intro's twelve videos, no more
    for number in range(12):  # exactly the intro's three frames of each video are left out
        video = videos[f"v{number:02d}"]
        assert common.keep(video).tolist() == [False] * 3 + [True] * (len(video) - 3)
    for name in ("v12", "v20", "pair-a", "pair-b"):  # no intro; a copy shared by two videos is no boilerplate
        assert common.keep(videos[name]).all() and common.keep(frame_descriptors(videos[name])).all()
    # What the fit recorded of its own frames (what search uses for stored videos) agrees with the rule.
    descriptors, video_of = descriptors_of(videos)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(video_of))])
    assert common.fitted(offsets, np.arange(len(videos))).tolist() == common.common(descriptors).tolist()
    assert common.fitted(offsets, [1, 0]).tolist() == common.common(descriptors[offsets[1]:offsets[2]]).tolist() + \
        common.common(descriptors[:offsets[1]]).tolist()
    assert common.fitted(offsets[:-1], [0]) is None  # fitted on another collection: not known


def test_fewer_videos_than_the_minimum_are_not_boilerplate():
    videos, _ = boilerplate_videos(intro_in=5)
    common = fit_common_frames(*descriptors_of(videos), min_videos=8)
    assert all(common.keep(v).all() for v in videos.values())
    assert fit_common_frames(*descriptors_of(videos), min_videos=5).keep(videos["v00"]).sum() == len(videos["v00"]) - 3


def test_flat_frames_have_coherent_regions():
    """Synthetic features: a flat frame's regions differ only by position (the same for every flat frame)."""
    rng = np.random.default_rng(1)
    base, position = 3 * _unit(rng.standard_normal(64)), 0.3 * rng.standard_normal((9, 64))
    flat = _unit(base + position + rng.standard_normal((4, 1, 64)))  # one content for all nine regions
    real = _unit(base + position + rng.standard_normal((6, 9, 64)))
    direction = mean_direction(frame_descriptors(real))
    assert low_information(flat, direction).all() and not low_information(real, direction).any()
    assert not low_information(real[:, :1]).any()  # one region a frame cannot tell
    assert low_information(np.zeros((0, 9, 64))).shape == (0,)


@pytest.fixture(scope="module")
def extracted(videos_dir):
    """Random-weight features of a real clip's frames and of flat frames of five colours (as measured)."""
    from s2vs_cli.media.video import sample_frames
    from s2vs_cli.models.loading import load_extractor

    extractor = load_extractor("random", "random", "cpu")
    real = np.stack([frame.image for frame in sample_frames(videos_dir / "bikes.mp4", fps=0.5)])
    colours = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (200, 30, 30), (20, 40, 160))
    flat = np.stack([np.full(real.shape[1:], colour, np.uint8) for colour in colours])
    return [extractor.extract(torch.from_numpy(x), precision="fp32").numpy() for x in (real, flat)]


def test_low_information_tells_flat_frames_from_a_real_clip(extracted):
    real, flat = extracted
    direction = mean_direction(frame_descriptors(real))  # the collection's: here the clip's own frames
    assert region_coherence(real, direction).max() < LOW_INFORMATION <= region_coherence(flat, direction).min()
    assert low_information(flat, direction).all() and not low_information(real, direction).any()


def test_kept_frames_keep_their_times_and_never_drop_a_whole_video():
    features, times = np.arange(5 * 2).reshape(5, 2), np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    kept = kept_frames(features, times, np.array([False, True, True, False, True]))
    assert kept.times.tolist() == [0.5, 1.0, 2.0] and kept.features.tolist() == [[2, 3], [4, 5], [8, 9]]
    assert (kept.left_out, kept.all_left_out) == (2, False)
    everything = kept_frames(features, times, np.zeros(5, dtype=bool))  # all boilerplate: compared whole
    assert everything.times.tolist() == times.tolist() and (everything.left_out, everything.all_left_out) == (0, True)


def test_an_index_keeps_its_fit_until_the_store_changes(tmp_path):
    videos, _ = boilerplate_videos(dims=512, regions=1)
    path = tmp_path / "features.h5"
    write_store(path, {k: v for k, v in videos.items() if k != "pair-b"})
    index, _ = open_index(path)
    fitted = common_frames_of_index(index)
    saved = index_dir_for(path) / FILE
    assert saved.is_file() and fitted.videos.max() == 12
    again = common_frames_of_index(index)
    assert np.array_equal(again.prototypes, fitted.prototypes) and again.stamp == fitted.stamp
    assert np.array_equal(again.fitted_common, fitted.fitted_common)
    write_store(path, {"pair-b": videos["pair-b"]}, keep_existing=True)  # the store grows: fitted anew
    grown, update = open_index(path)
    assert update.action == "added" and common_frames_of_index(grown).stamp["videos"] == len(videos)
    saved.write_bytes(b"damaged")  # a cache: a damaged file is fitted again, never an error
    assert common_frames_of_index(grown).videos.max() == 12


@pytest.fixture(scope="module")
def planted_store(tmp_path_factory):
    """A store where twelve unrelated videos share an intro and 'query-copy' copies 'query' (no intro); no
    shared direction, so that features-only maps of unrelated videos hold no match."""
    videos, base = boilerplate_videos(dims=512, shared=0.0)
    rng = np.random.default_rng(5)
    query = _unit(base + rng.standard_normal((8, 9, 512)))
    videos["query"] = np.concatenate([videos["v00"][:3], query])  # the intro, then its own content
    videos["query-copy"] = _unit(query + 0.02 * rng.standard_normal(query.shape))
    videos["intro-only"] = videos["v01"][:3]  # nothing but the intro: compared whole, not dropped
    path = tmp_path_factory.mktemp("planted") / "features.h5"
    write_store(path, videos)
    return path


def _search(store, *extra, query="query"):
    # A floor on the matches' score: tiny maps of random frames hold weak parts (score ~0.08) of their own.
    result = runner.invoke(app, ["search", query, "--database", str(store), "--features-only", "-k", "40",
                                 "--min-match-score", "0.5", "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["results"][0]


def test_search_leaves_the_intro_out_unless_asked_to_keep_it(planted_store):
    left_out = _search(planted_store)
    kept = _search(planted_store, "--keep-common-frames")
    assert left_out["left_out_frames"] == 3 and "left_out_frames" not in kept
    hits = {hit["id"]: hit for hit in left_out["hits"]}
    assert left_out["hits"][0]["id"] == "query-copy" and hits["query-copy"]["left_out_frames"] == 0
    # The copy is found at its own times; the intro no longer makes v00..v11 match the query.
    assert hits["query-copy"]["matches"][0]["query_start"] >= 3.0
    assert all(not hits[f"v{n:02d}"]["matches"] for n in range(12) if f"v{n:02d}" in hits)
    kept_hits = {hit["id"]: hit for hit in kept["hits"]}
    assert any(kept_hits[f"v{n:02d}"]["matches"] for n in range(12) if f"v{n:02d}" in kept_hits)
    exhaustive = _search(planted_store, "--exhaustive")  # every video scored: each says what it left out
    assert exhaustive["left_out_frames"] == 3 and exhaustive["hits"][0]["id"] == "query-copy"
    every = {hit["id"]: hit for hit in exhaustive["hits"]}
    assert every["v01"]["left_out_frames"] == 3 and every["v20"]["left_out_frames"] == 0
    assert not any(every[f"v{n:02d}"]["matches"] for n in range(12) if f"v{n:02d}" in every)


@pytest.fixture(scope="module")
def intro_clips(videos_dir, tmp_path_factory) -> dict[str, Path]:
    """Two unrelated 5-s clips opening with the same 2-s intro (FFmpeg's mandelbrot), 128 x 96 pixels."""
    import subprocess

    folder = tmp_path_factory.mktemp("intro")
    intro = folder / "intro.mp4"

    def ffmpeg(*args: str) -> None:
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)

    ffmpeg("-f", "lavfi", "-i", "mandelbrot=s=128x96:r=10", "-t", "2", "-pix_fmt", "yuv420p", str(intro))
    clips = {}
    for name, source in (("a", "bikes.mp4"), ("b", "car-detection.mp4")):
        body = folder / f"{name}-body.mp4"
        ffmpeg("-t", "3", "-i", str(videos_dir / source), "-an", "-vf", "scale=128:96,setsar=1,fps=10",
               "-pix_fmt", "yuv420p", str(body))
        clips[name] = folder / f"{name}.mp4"
        ffmpeg("-i", str(intro), "-i", str(body), "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0",
               "-pix_fmt", "yuv420p", str(clips[name]))
    return clips


def test_compare_with_a_collection_leaves_its_intro_out(intro_clips, tmp_path):
    """A collection where ten videos open with the clips' intro (its features, as the same model makes them)."""
    from s2vs_cli.config import CompareConfig
    from s2vs_cli.jobs.compare import compare_videos
    from s2vs_cli.runtime import Runtime
    from s2vs_cli.scoring.pair import extract_video_features
    from s2vs_cli.storage.store import StoreIdentity

    runtime = Runtime.cpu("fp32")
    runtime.load_extractor("random", "random")
    intro = extract_video_features(intro_clips["a"], runtime.extractor, 1.0).features.numpy()
    rng = np.random.default_rng(0)
    mean = _unit(intro.mean((0, 1)))
    collection = {f"c{i}": np.concatenate([intro[:2], _unit(mean + 0.01 * rng.standard_normal((4, 9, intro.shape[2])))])
                  for i in range(10)}  # the intro, then frames about the model's mean direction
    path = tmp_path / "collection.h5"
    write_store(path, collection, identity=StoreIdentity.of(runtime.extractor, 1.0, dtype="float32"))
    settings = {"features_only": True, "backbone_weights": "random", "pca": "random", "precision": "fp32"}
    left_out = compare_videos(intro_clips["a"], intro_clips["b"], CompareConfig(collection=str(path), **settings),
                              runtime).as_dict()
    every = compare_videos(intro_clips["a"], intro_clips["b"],
                           CompareConfig(collection=str(path), keep_common_frames=True, **settings), runtime).as_dict()
    # The intro's two frames of each (the query's first bikes frame may also go: low-information to this
    # collection's mean direction, made of the intro alone).
    assert left_out["left_out_frames"]["target"] == 2 and left_out["left_out_frames"]["query"] in (2, 3)
    assert [5 - n for n in left_out["left_out_frames"].values()] == left_out["frames"]
    assert "left_out_frames" not in every and every["frames"] == [5, 5]
    # Matches are reported on the real videos' times: nothing of what is left starts inside the intro.
    assert all(m["query_start"] >= 2.0 and m["target_start"] >= 2.0 for m in left_out["matches"])
    other = StoreIdentity.of(runtime.extractor, 2.0, dtype="float32")  # a collection sampled at another rate
    write_store(tmp_path / "other.h5", collection, identity=other)
    with pytest.raises(Exception, match="was made with other settings than these videos' features"):
        compare_videos(intro_clips["a"], intro_clips["b"], CompareConfig(collection=str(tmp_path / "other.h5"),
                                                                         **settings), runtime)


def test_a_video_copied_into_many_is_content_not_boilerplate():
    """Ten copies of one video share every frame: widespread, but not boilerplate of otherwise unrelated videos."""
    videos, _ = boilerplate_videos()
    rng = np.random.default_rng(3)
    for copy in range(10):
        videos[f"copy{copy}"] = _unit(videos["pair-a"] + 0.02 * rng.standard_normal(videos["pair-a"].shape))
    common = fit_common_frames(*descriptors_of(videos))
    assert common.keep(videos["pair-a"]).all() and common.keep(videos["copy3"]).all()
    assert common.keep(videos["v00"]).tolist()[:4] == [False, False, False, True]  # the intro still is


def test_a_query_made_only_of_boilerplate_is_searched_whole_with_a_warning(planted_store):
    result = _search(planted_store, query="intro-only")
    assert result["error"] is None and result["left_out_frames"] == 0
    assert result["warnings"] == ["intro-only: every frame is boilerplate or low-information; all were compared"]
    hits = {hit["id"]: hit for hit in result["hits"]}
    assert hits and hits["v00"]["left_out_frames"] == 3  # the stored videos still lose their intro
