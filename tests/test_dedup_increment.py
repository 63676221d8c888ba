"""`s2vs dedup --previous`: after videos are appended to the store, only the pairs touching them are looked for
and scored, and the result equals a full run's; an earlier result that does not describe the store is refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2vs_cli.config import DedupConfig
from s2vs_cli.errors import ConfigError
from s2vs_cli.jobs.dedup import run_dedup
from s2vs_cli.jobs.dedup_collection import Collection
from s2vs_cli.scoring import self_join
from s2vs_cli.runtime import Runtime
from s2vs_cli.storage.store import StoreIdentity
from test_dedup import FLOORS, IDENTITY, _dedup, _rounded, facts_of, planted
from test_search import _unit, write_store

FIRST = ["a-orig", "c-noisy", "e-left", "u1", "u2"]  # stored first; then the others are appended
OPTIONS = ["--features-only", "--min-match-score", "0.5"]


def _run(store: Path, tmp: Path, name: str, *extra: str) -> dict:
    out = tmp / name
    result = _dedup(str(store), *OPTIONS, *extra, "-o", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def _same(increment: dict, full: dict) -> None:
    assert _rounded(increment["pairs"]) == _rounded(full["pairs"])
    assert increment["groups"] == full["groups"]
    assert increment["collection"] == full["collection"]


def _grow(folder: Path, *flags: str) -> tuple[Path, Path]:
    """A store deduplicated (the earlier result, with `flags`), then four videos appended to it."""
    videos = planted()
    store = folder / "planted.h5"
    write_store(store, {video: videos[video] for video in FIRST}, identity=IDENTITY)
    _run(store, folder, "earlier.json", *flags)
    write_store(store, {video: x for video, x in videos.items() if video not in FIRST}, keep_existing=True,
                identity=IDENTITY)
    return store, folder / "earlier.json"


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> tuple[Path, Path]:
    return _grow(tmp_path_factory.mktemp("increment"))


@pytest.mark.parametrize("keep", [False, True], ids=["common-frames-left-out", "keep-common-frames"])
def test_an_increment_equals_a_full_run_from_fewer_pairs(grown, tmp_path, keep):
    flags = ["--keep-common-frames"] if keep else []
    store, previous = _grow(tmp_path, *flags) if keep else grown
    folder = previous.parent
    earlier = json.loads(previous.read_text())
    assert [(p["a"], p["b"]) for p in earlier["pairs"]] == [("a-orig", "c-noisy")]
    increment = _run(store, folder, f"increment-{keep}.json", *flags, "--previous", str(previous))
    full = _run(store, folder, f"full-{keep}.json", *flags)
    _same(increment, full)
    assert len(full["pairs"]) == 7 and full["groups"][0]["members"] == ["a-orig", "b-exact", "c-noisy"]
    assert increment["stages"]["increment"] == {"previous": str(previous), "new": 4, "touched": 4, "reused": 1}
    assert increment["stages"]["scored"] < full["stages"]["scored"]
    for stage in ("segments", "frame_level"):  # the self-join's stages saw fewer pairs too
        assert increment["stages"]["self_join"][stage]["pairs"] < full["stages"]["self_join"][stage]["pairs"]
    assert set(increment["collection"]["videos"]) == set(planted())
    assert all(set(entry) == {"frames", "crc", "kept", "scored"} for entry in full["collection"]["videos"].values())
    again = _run(store, folder, f"again-{keep}.json", *flags, "--previous", str(folder / f"full-{keep}.json"))
    _same(again, full)  # nothing new: every pair reused, none scored
    assert again["stages"]["scored"] == 0 and again["stages"]["increment"]["reused"] == 7


def test_a_refit_of_the_common_frames_rescored_the_videos_it_changes(tmp_path):
    """Six videos open with one intro, not yet boilerplate (in fewer than MIN_VIDEOS videos): the self-join lists
    most of their intro pairs. Four more with it make it boilerplate: the earlier six keep other frames now, so
    their pairs are looked for again and the intro pairs are gone, as in a full run; the real copy's pair stays."""
    rng = np.random.default_rng(1)

    def video(frames: int) -> np.ndarray:
        return _unit(rng.standard_normal((frames, 9, 512)))

    intro, original = video(4), video(16)
    videos = {f"v{n}": np.concatenate([intro, video(12)]) for n in range(10)}
    copy = _unit(original + 0.02 * rng.standard_normal(original.shape))
    store = tmp_path / "intros.h5"
    write_store(store, {"orig": original, "copy": copy} | {f"v{n}": videos[f"v{n}"] for n in range(6)},
                identity=IDENTITY)
    earlier = _run(store, tmp_path, "earlier.json")
    intro_pairs = [p for p in earlier["pairs"] if p["a"].startswith("v")]
    assert len(intro_pairs) > 10 and all(p["relation"] == "overlap" for p in intro_pairs)  # the intro, not yet common
    write_store(store, {f"v{n}": videos[f"v{n}"] for n in range(6, 10)}, keep_existing=True, identity=IDENTITY)
    increment = _run(store, tmp_path, "increment.json", "--previous", str(tmp_path / "earlier.json"))
    full = _run(store, tmp_path, "full.json")
    _same(increment, full)
    assert [(p["a"], p["b"]) for p in full["pairs"]] == [("copy", "orig")]
    assert increment["stages"]["increment"]["touched"] == 10 and increment["stages"]["increment"]["reused"] == 1


def test_an_earlier_result_that_does_not_describe_the_store_is_refused(grown, tmp_path):
    store, earlier_path = grown
    earlier, previous = json.loads(earlier_path.read_text()), str(earlier_path)

    def refusal(*extra: str, path: str = previous, on: Path = store) -> str:
        result = _dedup(str(on), *OPTIONS, "--previous", path, *extra)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        return lines[0]

    assert refusal("--neighbours", "20") == ("error: earlier.json was made with neighbours 100 (this run: 20): run "
                                             "dedup without --previous, or with its settings")
    assert "keep_common_frames false (this run: true)" in refusal("--keep-common-frames")
    assert "previous needs the self-join" in refusal("--exhaustive")
    assert refusal(path=str(tmp_path / "none.json")) == f"error: previous: {tmp_path / 'none.json'} does not exist"
    old = tmp_path / "old.json"
    old.write_text(json.dumps({key: value for key, value in earlier.items() if key != "collection"}))
    assert "old.json records no collection" in refusal(path=str(old))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(earlier | {"pairs": [{"a": "a-orig", "b": "c-noisy"}]}))
    assert refusal(path=str(broken)) == ("error: previous: broken.json: pairs[0] is not a pair of a dedup result (a, "
                                         "b, similarity, directions, matches, coverage, relation)")
    broken.write_text(json.dumps(earlier | {"collection": {"videos": {"u1": {"frames": 3}}}}))
    assert refusal(path=str(broken)) == ("error: previous: broken.json: collection.videos['u1'] needs frames, crc "
                                         "and kept")
    changed = tmp_path / "changed.h5"
    videos = planted()
    write_store(changed, videos | {"u1": videos["u2"][:15]}, identity=IDENTITY)  # u1 extracted anew, other frames
    assert refusal(on=changed) == "error: 'u1' changed since earlier.json (its features differ): run dedup without " \
                                  "--previous"
    fewer = tmp_path / "fewer.h5"
    write_store(fewer, {video: videos[video] for video in FIRST if video != "e-left"}, identity=IDENTITY)
    assert refusal(on=fewer) == ("error: 'e-left' of earlier.json is no longer in the store: run dedup without "
                                 "--previous")
    other = tmp_path / "other.h5"
    write_store(other, {video: videos[video] for video in FIRST},
                identity=StoreIdentity("other", "test", 1.0, 512, dtype="float32"))
    assert refusal(on=other) == ("error: earlier.json was made from features of another extractor: backbone "
                                 "\"test\" (this store: \"other\")")


def test_without_an_earlier_result_config_has_no_previous(grown):
    store, _ = grown
    with pytest.raises(ConfigError, match="previous needs the self-join"):
        run_dedup([str(store)], DedupConfig(features_only=True, exhaustive=True, previous="x.json", **FLOORS),
                  Runtime.cpu(), facts=facts_of)


def test_a_video_whose_scored_frames_changed_is_looked_for_again(grown, tmp_path):
    """An earlier video scored on other frames than it keeps now (its `scored` digest differs: a refit of the
    common frames that the self-join's frames do not show) has its pairs looked for and scored again."""
    store, previous = grown
    earlier = json.loads(previous.read_text())
    earlier["collection"]["videos"]["c-noisy"]["scored"] += 1
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(earlier))
    increment = _run(store, tmp_path, "increment.json", "--previous", str(tampered))
    assert increment["stages"]["increment"] == {"previous": str(tampered), "new": 4, "touched": 5, "reused": 0}
    full = _run(store, tmp_path, "full.json")
    _same(increment, full)
    said = _dedup(str(store), *OPTIONS, "--previous", str(tampered))
    assert said.exit_code == 0, said.output
    assert (f"0 pairs reused from {tampered}; 4 new videos; the pairs of 5 videos looked for"
            in " ".join(said.stderr.split()))


def test_todays_decisions_apply_to_the_reused_pairs(grown, tmp_path):
    """--previous with --decisions: an earlier pair marked not_copy since is gone; one marked copy is listed once."""
    store, previous = grown
    earlier = json.loads(previous.read_text())
    assert [(p["a"], p["b"]) for p in earlier["pairs"]] == [("a-orig", "c-noisy")]  # the one pair reused
    for label in ("not_copy", "copy"):
        decisions = tmp_path / f"{label}.json"
        decisions.write_text(json.dumps({"format": "s2vs-decisions", "version": 1,
                                         "videos": {"a-orig": {"source": None}, "c-noisy": {"source": None}},
                                         "pairs": [{"a": "a-orig", "b": "c-noisy", "label": label}], "keep": []}))
        result = _run(store, tmp_path, f"with-{label}.json", "--previous", str(previous), "--decisions", str(decisions))
        marked = [p for p in result["pairs"] if {p["a"], p["b"]} == {"a-orig", "c-noisy"}]
        assert [p["decision"] for p in marked] == ([] if label == "not_copy" else ["copy"])


def test_the_facts_read_before_are_reused_while_their_sources_are_as_they_were(grown, tmp_path):
    store, _ = grown
    sources = {video: tmp_path / f"{video}.mp4" for video in planted()}
    for path in sources.values():
        path.write_bytes(b"x" * 100)
    read = []

    def facts(_store, video: str) -> dict:
        read.append(video)
        return {"duration": 10.0, "width": 64, "height": 48, "fps": 1.0, "bitrate": 80,
                "size": sources[video].stat().st_size, "source": str(sources[video])}

    first = run_dedup([str(store)], DedupConfig(features_only=True, **FLOORS), Runtime.cpu(), facts=facts)
    grouped = sorted({member for group in first.groups for member in group.members})
    assert sorted(read) == grouped and "b-exact" in grouped
    previous = tmp_path / "first.json"
    previous.write_text(json.dumps(first.as_dict()))
    read.clear()
    sources["b-exact"].write_bytes(b"x" * 200)  # replaced by another file since: read again
    again = run_dedup([str(store)], DedupConfig(features_only=True, previous=str(previous), **FLOORS), Runtime.cpu(),
                      facts=facts)
    assert read == ["b-exact"]
    assert [group.facts for group in again.groups] == [
        {member: facts | ({"size": 200} if member == "b-exact" else {}) for member, facts in group.facts.items()}
        for group in first.groups]


def test_an_increment_reads_no_earlier_video_while_the_common_frames_are_the_same(grown, tmp_path, monkeypatch):
    """The earlier result records a digest of the common frames: the same, and each video's features unchanged
    (checked), the frames stage 3 kept of an earlier video are the same, so none is read to find out."""
    store, _ = grown
    full = _run(store, tmp_path, "full.json")
    assert isinstance(full["collection"]["common"], int)
    read = []
    original = Collection.features
    monkeypatch.setattr(Collection, "features", lambda self, video: read.append(video) or original(self, video))
    again = _run(store, tmp_path, "again.json", "--previous", str(tmp_path / "full.json"))
    _same(again, full)
    assert read == []  # nothing new, the same common frames: no video read
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(full | {"collection": full["collection"] | {"common": full["collection"]["common"]
                                                                               + 1}}))
    _same(_run(store, tmp_path, "checked.json", "--previous", str(tampered)), full)
    scored = {video for video, entry in full["collection"]["videos"].items() if entry["scored"] is not None}
    assert scored and set(read) == scored  # another rule: every earlier scored video is read to find out


def test_a_pair_no_longer_marked_not_a_copy_comes_back_in_an_increment(grown, tmp_path):
    """The earlier run was told a-orig and c-noisy are not a copy (never looked at); today's file no longer says
    so: both videos are touched, their pairs looked for again, and the result is a full run's."""
    store, _ = grown
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps({"format": "s2vs-decisions", "version": 1,
                                     "videos": {"a-orig": {"source": None}, "c-noisy": {"source": None}},
                                     "pairs": [{"a": "a-orig", "b": "c-noisy", "label": "not_copy"}], "keep": []}))
    marked = _run(store, tmp_path, "marked.json", "--decisions", str(decisions))
    assert not [p for p in marked["pairs"] if {p["a"], p["b"]} == {"a-orig", "c-noisy"}]
    increment = _run(store, tmp_path, "increment.json", "--previous", str(tmp_path / "marked.json"))
    assert increment["stages"]["increment"]["touched"] == 2
    _same(increment, _run(store, tmp_path, "full.json"))
    assert [p for p in increment["pairs"] if {p["a"], p["b"]} == {"a-orig", "c-noisy"}]


def test_an_increment_after_the_joins_lists_changed_looks_for_every_pair_and_equals_a_full_run(tmp_path, monkeypatch):
    """The self-join's lists change when the collection doubles (or grows past a whole scan): they find other
    pairs among the earlier videos too. So every video's pairs are looked for again; the earlier pairs found again
    between unchanged videos are reused, not scored, and the result is a full run's."""
    store, previous = _grow(tmp_path)  # the earlier run scanned every segment (a small collection)
    assert json.loads(previous.read_text())["collection"]["join"] == "exact"
    monkeypatch.setattr(self_join, "EXACT_SEGMENTS", 0)  # the grown one: inverted lists
    monkeypatch.setattr(self_join, "LIST_SIZE", 2)
    increment = _run(store, tmp_path, "increment.json", "--previous", str(previous))
    full = _run(store, tmp_path, "full.json")
    _same(increment, full)
    assert full["collection"]["join"].endswith(tuple("0123456789")) and "lists" in full["collection"]["join"]
    assert increment["stages"]["increment"] == {"previous": str(previous), "new": 4, "touched": 4, "reused": 1,
                                                "rejoined": True}
    assert increment["stages"]["scored"] == full["stages"]["scored"] - 1  # the earlier pair found again: reused
    said = _dedup(str(store), *OPTIONS, "--previous", str(previous))
    assert said.exit_code == 0, said.output
    assert "every video's pairs looked for (the self-join's lists changed)" in " ".join(said.stderr.split())
