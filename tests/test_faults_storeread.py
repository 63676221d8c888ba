"""Issue 25, cases 2 and 3: every read of a feature file is checked whatever its format, and features are
read only from the file itself (no HDF5 link, external storage or virtual dataset is followed)."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.errors import FeatureStoreError
from s2vs_cli.scoring.retrieval import VideoScorer, score_prepared, score_store
from s2vs_cli.storage.parts import merge_parts
from s2vs_cli.storage.store import FeatureStore, StoreIdentity, verify_store
from test_search import _unit, write_store

runner = CliRunner()
DIMS = 16
IDENTITY = StoreIdentity("test", "test", 1.0, DIMS, dtype="float32")


def _videos(count: int = 5, dtype=np.float32) -> dict[str, np.ndarray]:
    """'query', its near copy 'copy', and unrelated videos: [T, 2, 16] unit region vectors."""
    rng = np.random.default_rng(3)
    query = _unit(rng.standard_normal((8, 2, DIMS)))
    videos = {"query": query, "copy": _unit(query + 0.05 * rng.standard_normal(query.shape))}
    videos |= {f"v{i}": _unit(rng.standard_normal((int(rng.integers(5, 12)), 2, DIMS))) for i in range(count - 2)}
    return {k: v.astype(dtype) for k, v in videos.items()}


def _rewrite_without_checksums(source: Path, target: Path) -> None:
    """What a repack that drops filters does (h5repack -f NONE, or h5py without them): every attribute kept,
    the root's format 2 included, the datasets contiguous and unchecksummed."""
    with h5py.File(source, "r") as old, h5py.File(target, "w") as new:
        new.attrs.update(dict(old.attrs))
        for name in old:
            new.create_dataset(name, data=old[name][()]).attrs.update(dict(old[name].attrs))


def _overwrite(path: Path, video_id: str, values: np.ndarray, offset: int = 0) -> None:
    """Put `values`' bytes over a contiguous dataset's data where it lies in the file (rot, as on disk)."""
    with h5py.File(path, "r") as f:
        start = f[video_id].id.get_offset()
    with open(path, "r+b") as handle:
        handle.seek(start + offset)
        handle.write(np.ascontiguousarray(values).tobytes())


def _published(path: Path, videos: dict[str, np.ndarray]) -> Path:
    """The published files' layout: no identity, no checksums, no digests."""
    with h5py.File(path, "w") as f:
        for video_id, x in videos.items():
            f.create_dataset(video_id, data=x)
    return path


def _search(store: Path, *extra: str):
    return runner.invoke(app, ["search", "query", "--database", str(store), "--features-only", "--json", *extra])


def _similarities(result) -> list[float]:
    return [hit["similarity"] for r in json.loads(result.stdout)["results"] for hit in r["hits"]]


# --- case 2: stores without chunk checksums are checked on every read -------------------------------------

@pytest.fixture()
def unchecksummed(tmp_path) -> Path:
    """A store written by s2vs (format 2, digests), rewritten without its chunk checksums."""
    written = tmp_path / "written.h5"
    write_store(written, _videos(), identity=IDENTITY)
    _rewrite_without_checksums(written, tmp_path / "features.h5")
    return tmp_path / "features.h5"


@pytest.mark.parametrize("damage", ["large", "nan", "small"])
@pytest.mark.parametrize("search", ["exhaustive", "index"])
def test_case_2_a_store_rewritten_without_checksums_is_checked_on_every_read(unchecksummed, damage, search):
    """issue 25 case 2: flipped bytes gave similarities of 65,479 (exit 0, a wrong top hit) and NaN a query
    with no hits and no error; now every read checks the digest and the values, whatever the file's format."""
    values = {"large": np.full(4, 3e4, np.float32), "nan": np.full(4, np.nan, np.float32),
              "small": np.full(1, 0.2, np.float32)}[damage]  # 'small': a plausible value, found by its digest
    _overwrite(unchecksummed, "copy", values, offset=4 * DIMS)
    with FeatureStore(unchecksummed) as store:
        store.read("v0")  # the others read fine
        with pytest.raises(FeatureStoreError) as error:
            store.read("copy")
    assert str(error.value) == (f"{unchecksummed}: 'copy' is damaged: its bytes differ from the digest recorded when it was written; "
                                f"`s2vs verify {unchecksummed}` lists every damaged video")
    result = _search(unchecksummed, *(["--exhaustive"] if search == "exhaustive" else []))
    assert "Traceback" not in result.output
    if result.exit_code == 3:  # the query ran into the damaged video: its error names it, nothing is ranked
        (found,) = json.loads(result.stdout)["results"]
        assert found["hits"] == [] and f"{unchecksummed}: 'copy' is damaged" in found["error"]
    else:  # the index was built before the damage, or refused it: one line naming the video
        assert result.exit_code == 1 and f"{unchecksummed}: 'copy' is damaged" in result.output
    assert all(-1 <= s <= 1 for s in _similarities(result)) if result.stdout.startswith("{") else True
    check = verify_store(unchecksummed)
    assert [video for video, _ in check.damaged] == ["copy"]


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("layout", ["T x R x D", "T x D"])
def test_case_2_published_layout_is_checked_for_unit_region_vectors(tmp_path, dtype, layout):
    """issue 25 case 2: files with neither checksums nor digests (the published layout, T x 9 x 512 or T x 512)
    are checked for finite values and unit region vectors; float16 rounding passes, a rescaled vector does not."""
    videos = _videos(dtype=dtype)
    if layout == "T x D":
        videos = {k: v[:, 0].copy() for k, v in videos.items()}
    videos["axis"] = np.eye(DIMS, dtype=dtype)[:6]  # exactly unit, every value 0 or 1
    path = _published(tmp_path / "published.h5", videos)
    with FeatureStore(path) as store:
        for video_id, x in videos.items():
            np.testing.assert_array_equal(store.read(video_id).features.reshape(x.shape), x)
    damaged = videos["v1"].copy()
    damaged[2] *= 1.05  # one frame's region vectors 5% too long: finite, plausible, wrong
    with h5py.File(path, "a") as f:
        f["v1"][...] = damaged
    with FeatureStore(path) as store, pytest.raises(FeatureStoreError) as error:
        store.read("v1")
    assert str(error.value) == (f"{path}: 'v1' is damaged: a region vector has norm 1.05 (stored features are unit "
                                f"vectors); `s2vs verify {path}` lists every damaged video")
    assert [(v, r) for v, r in verify_store(path).damaged] == [
        ("v1", "damaged: a region vector has norm 1.05 (stored features are unit vectors)")]
    merged = merge_parts(tmp_path / "merged.h5", [path], None, "test")
    assert [(d.video_id, d.reason) for d in merged.damaged] == [
        ("v1", "damaged: a region vector has norm 1.05 (stored features are unit vectors)")]


def test_case_2_exhaustive_search_of_a_published_file_names_the_damaged_video(tmp_path):
    """issue 25 case 2: in the published layout, huge values from flipped bytes gave scores far outside
    [-1, 1]; now the read names the video and no score outside [-1, 1] is printed."""
    path = _published(tmp_path / "features.h5", _videos())
    _overwrite(path, "copy", np.full(8, 3e4, np.float32))
    result = _search(path, "--exhaustive")
    assert result.exit_code == 3 and "Traceback" not in result.output
    (found,) = json.loads(result.stdout)["results"]
    assert found["hits"] == [] and found["error"] == (
        f"{path}: 'copy' is damaged: a region vector has norm 8.49e+04 (stored features are unit vectors); "
        f"`s2vs verify {path}` lists every damaged video")


class _Scorer:
    """A stand-in scorer giving fixed similarities (what damage that escaped every read check would give)."""

    def __init__(self, scores: list[float]):
        self.scores, self.network, self.device = np.asarray(scores), None, torch.device("cpu")

    def prepare_targets(self, videos):
        return videos

    def score(self, query, targets, maps=None):
        return self.scores[:len(targets)]


@pytest.mark.parametrize("score", [1.5, -1.2, float("nan"), float("inf")])
def test_case_2_a_score_outside_the_range_is_an_error_naming_the_pair(tmp_path, score):
    """issue 25 case 2: no similarity outside [-1, 1] is ranked, printed or written: it names the pair."""
    path = _published(tmp_path / "features.h5", _videos())
    with FeatureStore(path) as store, pytest.raises(FeatureStoreError) as error:
        score_prepared(store, {"query": None}, ["v0", "v1"], _Scorer([0.5, score]))
    assert str(error.value) == (f"{path}: 'query' against 'v1' gives a similarity of {score:.6g}, outside [-1, 1]; "
                                f"their features are damaged (`s2vs verify {path}` checks the file)")


def test_case_2_rounding_past_one_is_clipped_not_printed(tmp_path):
    """issue 25 case 2: features-only Chamfer of float16 vectors may pass 1 by rounding: it is reported as 1."""
    path = _published(tmp_path / "features.h5", _videos())
    with FeatureStore(path) as store:
        scores = score_prepared(store, {"query": None}, ["v0", "v1", "v2"], _Scorer([1.0004, -1.0004, 0.25]))
    assert scores == {"query": {"v0": 1.0, "v1": -1.0, "v2": 0.25}}
    videos = _videos(dtype=np.float16)
    videos["same"] = videos["query"]
    path16 = _published(tmp_path / "half.h5", videos)
    scored = score_store(str(path16), ["query"], ["same", "copy"], VideoScorer(None, torch.device("cpu"), "fp32"))
    assert scored.similarities["query"]["same"] == pytest.approx(1.0, abs=2e-3)
    assert -1 <= min(scored.similarities["query"].values()) and max(scored.similarities["query"].values()) <= 1


# --- case 3: HDF5 indirection is refused ---------------------------------------------------------------

def _plant(store: Path, kind: str, source: np.ndarray) -> str:
    """Add 'planted' to `store`: features that live somewhere else than in the store's own dataset."""
    folder = store.parent
    raw = folder / "elsewhere.raw"
    raw.write_bytes(source.astype(np.float32).tobytes())
    with h5py.File(folder / "other.h5", "w") as other:
        other.create_dataset("planted", data=source.astype(np.float32))
    with h5py.File(store, "a") as f:
        if kind == "external storage":
            f.create_dataset("planted", shape=source.shape, dtype=np.float32,
                             external=[(str(raw), 0, source.astype(np.float32).nbytes)])
        elif kind == "external link":
            f["planted"] = h5py.ExternalLink(str(folder / "other.h5"), "/planted")
        elif kind == "soft link":
            f["planted"] = h5py.SoftLink("/query")
        else:  # a virtual dataset mapping the other file's dataset
            layout = h5py.VirtualLayout(shape=source.shape, dtype=np.float32)
            layout[...] = h5py.VirtualSource(str(folder / "other.h5"), "planted", shape=source.shape)
            f.create_virtual_dataset("planted", layout)
    return {"external storage": f"stored in another file ({raw})",
            "external link": f"an HDF5 external link to {folder / 'other.h5'}:/planted",
            "soft link": "an HDF5 soft link to /query",
            "virtual dataset": "an HDF5 virtual dataset (its data is read from other datasets)"}[kind]


KINDS = ["external storage", "external link", "soft link", "virtual dataset"]


@pytest.mark.parametrize("kind", KINDS)
def test_case_3_features_stored_elsewhere_are_refused_naming_the_video(tmp_path, kind):
    """issue 25 case 3: a dataset whose features live elsewhere (another file, another dataset) was read by
    index and search (similarity 1.0 to every video); every read path refuses it, naming the video."""
    store = tmp_path / "features.h5"
    videos = _videos()
    write_store(store, videos, identity=IDENTITY)
    what = _plant(store, kind, videos["query"])
    expected = (f"{store}: 'planted' is {what}; s2vs reads features only from the file's own datasets; "
                f"`s2vs verify {store} --repair` removes it")
    with FeatureStore(store) as opened:
        assert "planted" in opened.ids() and "planted" in opened
        opened.read("v0")
        for read in (opened.read, opened.shape, opened.frames_and_digest, opened.times):
            with pytest.raises(FeatureStoreError) as error:
                read("planted")
            assert str(error.value) == expected
    for args in (["index", str(store)], ["search", "query", "--database", str(store), "--features-only"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and result.output.strip() == f"error: {expected}", (args, result.output)
    assert verify_store(store).damaged == [("planted", expected)]
    merged = merge_parts(tmp_path / "merged.h5", [store], IDENTITY, "test")
    assert [d.video_id for d in merged.damaged] == ["planted"]
    with FeatureStore(tmp_path / "merged.h5") as kept:
        assert sorted(kept.ids()) == sorted(videos)


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_case_3_every_command_refuses_it(tmp_path, kind):
    """issue 25 case 3: evaluate, fit-pca, verify and merge from the command line: one line, naming the video."""
    store = _published(tmp_path / "features.h5", _videos())
    _plant(store, kind, _videos()["query"])
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["query"], "database": ["copy", "planted", "v0"],
                              "positives": {"query": ["copy"]}}))
    commands = {"evaluate": (["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--dataset-hdf5",
                              str(store), "--features-only"], 1),
                "fit-pca": (["fit-pca", str(store), "-o", str(tmp_path / "pca.pth")], 1),
                "verify": (["verify", str(store)], 1),
                "merge": (["merge", str(tmp_path / "merged.h5"), str(store)], 3)}
    for name, (args, status) in commands.items():
        result = runner.invoke(app, args)
        assert result.exit_code == status and "'planted'" in result.output and "Traceback" not in result.output, \
            (name, result.output)
    assert not (tmp_path / "pca.pth").exists()


def test_case_3_nested_ids_under_a_linked_group_are_refused(tmp_path):
    """issue 25 case 3: an id with '/' whose group is a link to another file is refused too."""
    store = _published(tmp_path / "features.h5", {"a/b": _videos()["query"]})
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other.create_dataset("g/c", data=_videos()["copy"])
    with h5py.File(store, "a") as f:
        f["linked"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/g")
    with FeatureStore(store) as opened:
        assert opened.ids() == ["a/b", "linked"]
        opened.read("a/b")
        with pytest.raises(FeatureStoreError, match=f"'linked' is an HDF5 external link to {tmp_path / 'other.h5'}:/g;"):
            opened.read("linked")
        with pytest.raises(FeatureStoreError, match="'linked/c' is under 'linked', an HDF5 external link to"):
            opened.read("linked/c")


def test_case_2_compare_never_reports_a_similarity_outside_the_range():
    """issue 25 case 2: compare's similarity is clipped to [-1, 1] when rounding passes 1, and features that give
    one further out (not unit vectors) are an error naming the pair."""
    from s2vs_cli.errors import S2VSError
    from s2vs_cli.scoring.pair import as_video_features, compare_features

    query = _videos(dtype=np.float16)["query"].astype(np.float32)  # float16 rounding: self-similarity ~1 +- 1e-3
    times = np.arange(len(query), dtype=float)
    same = compare_features(as_video_features("q.mp4", query, times, 1.0),
                            as_video_features("t.mp4", query, times, 1.0), None)
    assert same.similarity == pytest.approx(1.0, abs=2e-3) and same.similarity <= 1.0
    with pytest.raises(S2VSError) as error:
        compare_features(as_video_features("q.mp4", query, times, 1.0),
                         as_video_features("t.mp4", 3 * query, times, 1.0), None)
    assert str(error.value).startswith("q.mp4 against t.mp4: a similarity of 3.0") and str(error.value).endswith(
        ", outside [-1, 1]; their features are damaged")
