"""The index's catalogue in numpy arrays: round trip, vectorised checks and comparison, no Python object
per video once loaded, and indexes of earlier versions (catalogue as JSON lists) rebuilt."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import s2vs_cli.storage.catalogue as catalogue_module
from s2vs_cli.storage.catalogue import (HASHED_DIGEST, HEX_DIGEST, NO_DIGEST, SearchIndexError, VideoCatalogue,
                                        encode_digest)
from s2vs_cli.storage.index import index_dir_for, open_index
from test_search import collection, write_store

IDS = ["a", "bé", "ccc", "vidéo€ 2.mp4", "folder/clip"]
FRAMES = [1, 2, 0, 40, 3_000_000]
DIGESTS = [None, "0123456789abcdef", "not a hex digest", "ffffffffffffffff", None]


def _catalogue() -> VideoCatalogue:
    return VideoCatalogue.from_lists(IDS, FRAMES, DIGESTS)


def test_a_catalogue_round_trips_through_its_file(tmp_path):
    catalogue = _catalogue()
    catalogue.save(tmp_path / "catalogue.npz")
    loaded = VideoCatalogue.load(tmp_path / "catalogue.npz")
    loaded.check(tmp_path)
    assert list(loaded.ids) == IDS and loaded.ids[-1] == "folder/clip" and loaded.ids[1:3] == ["bé", "ccc"]
    assert loaded.frames.tolist() == FRAMES and len(loaded) == 5
    assert loaded.digest_kinds.tolist() == [NO_DIGEST, HEX_DIGEST, HASHED_DIGEST, HEX_DIGEST, NO_DIGEST]
    assert loaded.digests.tolist()[1] == 0x0123456789ABCDEF and loaded.digests.tolist()[3] == 2 ** 64 - 1
    assert "vidéo€ 2.mp4" in loaded.ids and "vidéo" not in loaded.ids and loaded.ids.number("ccc") == 2
    with pytest.raises(IndexError):
        loaded.ids[5]


def test_digests_that_differ_encode_differently():
    assert encode_digest("0123456789abcdef") != encode_digest("0123456789abcdee")
    assert encode_digest("0123456789ABCDEF")[0] == HASHED_DIGEST  # not as content_digest writes them
    assert encode_digest("x") != encode_digest("y") and encode_digest(None) == (NO_DIGEST, 0)


def test_loaded_catalogue_holds_arrays_not_a_python_object_per_video(tmp_path):
    count = 20_000
    ids = [f"video-{n:07d}-{'x' * (n % 20)}" for n in range(count)]
    VideoCatalogue.from_lists(ids, [75] * count, ["0123456789abcdef"] * count).save(tmp_path / "catalogue.npz")
    tracemalloc.start()
    try:
        loaded = VideoCatalogue.load(tmp_path / "catalogue.npz")
        loaded.check(tmp_path)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    id_bytes = sum(len(i) for i in ids)
    # The arrays: the ids' bytes + 8 (offset) + 4 (frames) + 8 (digest) + 1 (kind) a video. A list of str
    # alone would hold over 60 bytes more a video (a str object and its pointer).
    assert held < id_bytes + 21 * count + 16_384
    assert all(isinstance(value, np.ndarray) for value in vars(loaded).values())


def _damaged(change) -> VideoCatalogue:
    catalogue = _catalogue()
    change(catalogue)
    return catalogue


def _set(name: str, position: int, value):
    return lambda c: getattr(c, name).__setitem__(position, value)


def _repeat_ccc(catalogue: VideoCatalogue) -> None:
    """A sixth video, with the third's id."""
    repeated = VideoCatalogue.from_lists(IDS + ["ccc"], FRAMES + [1], DIGESTS + [None])
    vars(catalogue).update(vars(repeated))


@pytest.mark.parametrize("change, reason", [
    (_repeat_ccc, "lists 'ccc' twice"),
    (lambda c: setattr(c, "frames", c.frames[:-1]), "lists 5 ids, 4 frame counts, 5 digests and 5 digest kinds"),
    (_set("frames", 3, -1), "has a negative frame count"),
    (_set("digest_kinds", 0, 7), "has a digest of unknown kind"),
    (_set("id_offsets", 2, 8), "has id offsets that do not cut its id bytes in order"),
    (lambda c: setattr(c, "id_offsets", c.id_offsets[:-1] + 0), "lists 4 ids, 5 frame counts"),
    (_set("id_bytes", 2, 0xFF), "has an id that is not UTF-8 text"),
    (_set("id_offsets", 2, 3), "has an id that is not UTF-8 text"),  # "bé" cut inside its "é"
    (lambda c: setattr(c, "frames", c.frames.astype(np.float32)), "has a malformed frames (float32, 1-D)"),
    (lambda c: setattr(c, "digests", c.digests.reshape(1, -1)), "has a malformed digests (uint64, 2-D)"),
])
def test_each_check_refuses_its_damage_in_one_line_naming_the_folder(tmp_path, change, reason):
    with pytest.raises(SearchIndexError) as error:
        _damaged(change).check(tmp_path)
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: catalogue.npz ") and reason in message and "\n" not in message


def test_comparison_with_the_store_finds_gone_changed_and_new_videos():
    before = _catalogue()
    now = VideoCatalogue.from_lists(["new", "ccc", "a", "vidéo€ 2.mp4", "bé", "later"],
                                    [5, 0, 1, 41, 2, 6],
                                    [None, "not a hex digest", None, "ffffffffffffffff", "0123456789abcdee", None])
    gone, changed, new = before.compare(now)
    assert gone.tolist() == [4]             # "folder/clip" left the store
    assert changed.tolist() == [1, 3]       # "bé": another digest; "vidéo€ 2.mp4": another frame count
    assert new.tolist() == [0, 5]           # in the store's order
    added = before.extended(now.select(new))
    assert list(added.ids) == IDS + ["new", "later"] and added.frames.tolist() == FRAMES + [5, 6]
    same = before.compare(_catalogue())
    assert [len(part) for part in same] == [0, 0, 0]


def test_ids_with_the_same_hash_are_told_apart_by_their_bytes(monkeypatch):
    """Matching is by a 64-bit hash of each id, then its bytes: a collision is neither a match nor a repeat."""
    monkeypatch.setattr(catalogue_module, "id_hashes", lambda data, offsets: np.zeros(len(offsets) - 1, np.uint64))
    before = _catalogue()
    gone, changed, new = before.compare(VideoCatalogue.from_lists(["zz", "ccc"], [1, 0], [None, "not a hex digest"]))
    assert (gone.tolist(), changed.tolist(), new.tolist()) == ([0, 1, 3, 4], [], [0])
    before.check(Path("f"))  # all five hashes equal, no id repeated
    repeated = VideoCatalogue.from_lists(["x", "y", "x"], [1, 1, 1], [None] * 3)
    with pytest.raises(SearchIndexError, match="lists 'x' twice"):
        repeated.check(Path("f"))


@pytest.mark.parametrize("version", [3, 4])
def test_an_index_of_an_earlier_version_is_rebuilt(tmp_path, version):
    """Versions 3 and 4 kept the catalogue as JSON lists in videos.json: such an index is rebuilt, saying why."""
    store = tmp_path / "features.h5"
    write_store(store, collection(count=5))
    open_index(store)
    folder = index_dir_for(store)
    meta = json.loads((folder / "videos.json").read_text())
    meta |= {"version": version, "ids": ["v000"], "frames": [10], "digests": [None]}
    (folder / "videos.json").write_text(json.dumps(meta))
    (folder / "catalogue.npz").unlink()
    np.save(folder / "entries.npy", np.zeros(3, np.int32))  # what they kept beside index.faiss
    index, update = open_index(store)
    assert update.action == "rebuilt" and update.reason == f"{folder}: made by another version of s2vs"
    assert len(index) == 8 and (folder / "catalogue.npz").is_file() and not (folder / "entries.npy").exists()
    assert open_index(store)[1].action == "fresh"


def test_utf8_is_checked_a_block_of_ids_at_a_time(monkeypatch, tmp_path):
    monkeypatch.setattr(catalogue_module, "UTF8_BLOCK", 4)  # blocks cut at id boundaries, a few ids each
    catalogue = _catalogue()
    catalogue.check(tmp_path)
    catalogue.id_bytes[catalogue.id_offsets[3] + 6] = 0xFF  # inside "vidéo€ 2.mp4", in a later block
    with pytest.raises(SearchIndexError, match="has an id that is not UTF-8 text"):
        catalogue.check(tmp_path)


def test_an_ids_hash_depends_on_its_bytes_alone():
    """Wherever an id lies in the id bytes (first, last, inside a word): the same bytes, the same hash."""
    ids = ["a", "ab", "abcdefgh", "abcdefghi", "abcdefgh\0", "é", "abcdefghabcdefgh", "x" * 40]
    forward = VideoCatalogue.from_lists(ids, [1] * len(ids), [None] * len(ids))
    backward = VideoCatalogue.from_lists(["zzz"] + ids[::-1], [1] * (len(ids) + 1), [None] * (len(ids) + 1))
    hashes = catalogue_module.id_hashes(forward.id_bytes, forward.id_offsets)
    assert hashes.tolist() == catalogue_module.id_hashes(backward.id_bytes, backward.id_offsets)[1:][::-1].tolist()
    assert len(set(hashes.tolist())) == len(ids)


def test_ids_are_compared_by_their_bytes_to_the_last():
    """Pair by pair, 8 bytes at a time, up to the last byte of the id data (read there without a copy)."""
    a = VideoCatalogue.from_lists(["same-long-identifier-0123456789", "x", "abcdefgh1", "abcdefgh2"], [1] * 4,
                                  [None] * 4)
    b = VideoCatalogue.from_lists(["abcdefgh1", "y", "same-long-identifier-0123456789", "abcdefgh3"], [1] * 4,
                                  [None] * 4)
    pairs = np.array([0, 1, 2, 3]), np.array([2, 1, 0, 3])
    assert catalogue_module._same_ids(a, pairs[0], b, pairs[1]).tolist() == [True, False, True, False]
