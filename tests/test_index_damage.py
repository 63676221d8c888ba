"""The search index is a cache of the store, never trusted: damaged files rebuild it (saying why), wild
coarse scores are refused, and a store in a read-only folder gets its index in the user's cache."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import s2vs_cli.storage.index as index_module
from s2vs_cli.cli import app
from s2vs_cli.storage.catalogue import VideoIds
from s2vs_cli.storage.index import (SearchIndexError, StoreStamp, VideoCatalogue, VideoIndex, cached_index_dir, index_dir_for,
                            open_index, segment_descriptors)
from s2vs_cli.storage.index_checks import crc32
from test_search import _unit, collection, write_store

QUERY = segment_descriptors(collection()["query"])


@pytest.fixture()
def store(tmp_path) -> Path:
    path = tmp_path / "collection" / "features.h5"
    path.parent.mkdir()
    write_store(path, collection(count=12))
    return path


def _flip(offsets):
    """Damage: bytes of index.faiss inverted at `offsets` from its end (where a flat index keeps its vectors)."""
    def damage(folder: Path) -> None:
        data = bytearray((folder / "index.faiss").read_bytes())
        for offset in offsets:
            data[-offset] ^= 0xFF
        (folder / "index.faiss").write_bytes(bytes(data))
    return damage


def _truncate(folder: Path) -> None:
    path = folder / "index.faiss"
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _restamp(folder: Path, name: str) -> None:
    meta = json.loads((folder / "videos.json").read_text())
    meta["files"][name] = {"bytes": (folder / name).stat().st_size, "crc32": crc32(folder / name)}
    (folder / "videos.json").write_text(json.dumps(meta))


def _catalogue(change):
    """Damage: catalogue.npz's arrays changed and restamped (a bug rather than bit rot): only its checks tell."""
    def damage(folder: Path) -> None:
        with np.load(folder / "catalogue.npz") as saved:
            arrays = dict(saved)
        change(arrays)
        with (folder / "catalogue.npz").open("wb") as out:
            np.savez(out, **arrays)
        _restamp(folder, "catalogue.npz")
    return damage


def _repeat_first_id(arrays: dict) -> None:
    """The second video's id made the first's."""
    ids = list(VideoIds(arrays["id_bytes"], arrays["id_offsets"]))
    ids[1] = ids[0]
    again = VideoCatalogue.from_lists(ids, arrays["frames"].tolist(), [None] * len(ids))
    arrays["id_bytes"], arrays["id_offsets"] = again.id_bytes, again.id_offsets


def _flip_catalogue(folder: Path) -> None:
    data = bytearray((folder / "catalogue.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "catalogue.npz").write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [
    (_flip([100, 1000, 1001, 3000, 5000]), "index.faiss fails its checksum"),
    (_truncate, "index.faiss is"),
    # 'long' (the first video) given 70 frames, not 50: 5 segments where index.faiss holds its 4.
    (_catalogue(lambda arrays: arrays["frames"].__setitem__(0, 70)),
     "index.faiss holds 31 vectors, the catalogue's frame counts make 32 segments"),
    (_catalogue(_repeat_first_id), "catalogue.npz lists 'long' twice"),
    (_catalogue(lambda arrays: arrays["frames"].__setitem__(0, -16)), "catalogue.npz has a negative frame count"),
    (_catalogue(lambda arrays: arrays.update(digests=arrays["digests"][:-1])),
     "catalogue.npz lists 15 ids, 15 frame counts, 14 digests and 15 digest kinds"),
    (_flip_catalogue, "catalogue.npz fails its checksum"),
])
def test_a_damaged_index_is_rebuilt_naming_what_failed(store, damage, reason):
    clean, _ = open_index(store)
    expected = clean.candidates(QUERY, 5, "query")
    folder = index_dir_for(store)
    damage(folder)
    index, update = open_index(store)
    assert update.action == "rebuilt" and update.reason.startswith(f"{folder}: ") and reason in update.reason
    assert "\n" not in update.reason
    assert index.candidates(QUERY, 5, "query") == expected
    assert open_index(store)[1].action == "fresh"


def test_flipped_vector_bytes_still_load_in_faiss_and_give_wild_scores(store):
    """Why the checksum: faiss reads the damaged file without complaint; only the scores show it."""
    import faiss

    clean, _ = open_index(store)
    folder = index_dir_for(store)
    _flip(range(1, 1024 * clean.index.ntotal, 7))(folder)  # every 7th byte of the vectors
    damaged = VideoIndex(faiss.read_index(str(folder / "index.faiss")), clean.catalogue, clean.stamp, clean.dims)
    damaged.folder = folder
    with pytest.raises(SearchIndexError, match=r"coarse scores out of range .* run `s2vs index --rebuild") as error:
        damaged.candidates(QUERY, 5)
    assert str(error.value).startswith(f"{folder}: ")


def test_candidates_refuse_scores_no_unit_vector_gives():
    import faiss

    vectors = _unit(np.random.default_rng(0).standard_normal((40, 512)))
    index = faiss.IndexFlatIP(512)
    index.add(200 * vectors)  # far from unit length, as garbled float16 bytes are
    catalogue = VideoCatalogue.from_lists([f"v{i}" for i in range(40)], [16] * 40, [None] * 40)
    video_index = VideoIndex(index, catalogue, StoreStamp(0, 0, 0), 512)
    with pytest.raises(SearchIndexError, match="coarse scores out of range"):
        video_index.candidates(vectors[:2], 5)
    # Not finite: refused too (faiss itself skips NaN, so checked directly); a missing result's -inf is not.
    with pytest.raises(SearchIndexError, match="coarse scores out of range"):
        video_index._check_scores(np.array([[0.5, np.nan]]), np.array([[0, 1]]), vectors[:1])
    video_index._check_scores(np.array([[0.5, -np.inf]]), np.array([[0, -1]]), vectors[:1])
    # The same index with unit vectors answers.
    index.reset()
    index.add(vectors)
    assert [video_id for video_id, _ in video_index.candidates(vectors[:2], 5)][:2] == ["v0", "v1"]
    # An entry past the catalogue's videos (more vectors than its frame counts make segments): refused too.
    index.add(vectors[:1])
    with pytest.raises(SearchIndexError, match="entries out of range, the index is damaged"):
        video_index.candidates(vectors[:1], 5)


def _read_only(monkeypatch, *folders: Path) -> None:
    """Make `_writable` say no for `folders` and everything under them.

    Monkeypatched rather than chmod'ed: the tests run as root, for whom mode bits do not stop writes (and
    os.access says yes), so a real read-only folder cannot be made here."""
    real = index_module._writable

    def writable(folder: Path) -> bool:
        return not any(folder == f or f in folder.parents for f in folders) and real(folder)
    monkeypatch.setattr(index_module, "_writable", writable)


def test_a_store_in_a_read_only_folder_gets_its_index_in_the_cache(store, tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    _read_only(monkeypatch, store.parent)
    cache = cached_index_dir(store)
    assert cache.parent == tmp_path / "cache" / "indexes" and len(cache.name) == 16
    index, update = open_index(store)
    assert (update.action, update.folder) == ("built", str(cache)) and (cache / "videos.json").is_file()
    assert update.note == f"the store's folder is not writable; index kept in {cache}"
    assert not index_dir_for(store).exists()
    again, update = open_index(store)
    assert (update.action, update.folder) == ("fresh", str(cache))
    assert again.candidates(QUERY, 5, "query") == index.candidates(QUERY, 5, "query")


def test_a_read_only_collection_uses_its_own_index_until_the_store_changes(store, tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    open_index(store)  # shipped with the collection
    _read_only(monkeypatch, store.parent)
    assert open_index(store)[1] == index_module.IndexUpdate("fresh", folder=str(index_dir_for(store)))
    write_store(store, {"new": _unit(np.random.default_rng(5).standard_normal((20, 9, 512)))}, keep_existing=True)
    index, update = open_index(store)
    assert (update.action, update.added, update.folder) == ("added", 1, str(cached_index_dir(store)))
    assert len(index) == 16 and open_index(store)[1].folder == str(cached_index_dir(store))


def test_a_really_read_only_folder(store, tmp_path, monkeypatch):
    """Not monkeypatched: `s2vs index` in a folder it cannot write to (as root: without the capabilities
    that let root write anywhere, which is what os.access consults too)."""
    command = [sys.executable, "-c", "import sys; from s2vs_cli.cli import app; sys.argv[0] = 's2vs'; app()",
               "index", str(store), "--json"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None or subprocess.run([setpriv, *DROP_ROOT, "true"]).returncode != 0:
            pytest.skip("running as root, and setpriv cannot drop the capabilities that let root write anywhere")
        command = [setpriv, *DROP_ROOT, *command]
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    store.parent.chmod(0o555)
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        store.parent.chmod(0o755)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["index"] == str(cached_index_dir(store)) and "not writable" in summary["note"]
    assert not index_dir_for(store).exists()


DROP_ROOT = ["--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


def test_no_writable_place_for_the_index_says_to_search_exhaustively(store, tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    _read_only(monkeypatch, store.parent, tmp_path / "cache")
    with pytest.raises(SearchIndexError) as error:
        open_index(store)
    message = str(error.value)
    assert "\n" not in message and "--exhaustive" in message
    assert str(store.parent) in message and str(cached_index_dir(store)) in message


def test_cli_says_why_a_garbled_index_was_rebuilt(store, tmp_path, monkeypatch):
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(store), "-q"]).exit_code == 0
    _flip([100, 2000])(index_dir_for(store))
    result = runner.invoke(app, ["index", str(store)])
    assert result.exit_code == 0, result.output
    assert f"index rebuilt ({index_dir_for(store)}: index.faiss fails its checksum" in result.output
    # And where the index went when the store's folder is read-only.
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    _read_only(monkeypatch, store.parent)
    result = runner.invoke(app, ["index", str(store), "--rebuild"])
    assert result.exit_code == 0 and f"index kept in {cached_index_dir(store)}" in result.output.replace("\n", "")
