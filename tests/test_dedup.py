"""`s2vs dedup`: relations and coverage of planted pairs, groups and links, keepers, JSON/CSV, the command line,
several feature files, thresholds, full ViSiL, and one end-to-end run on real clips."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.config import DedupConfig
from s2vs_cli.errors import ConfigError
from s2vs_cli.jobs.dedup import DedupResult, run_dedup
from s2vs_cli.jobs.dedup_tables import GROUP_COLUMNS, PAIR_COLUMNS, write_dedup_tables
from s2vs_cli.progress import CallbackProgress
from s2vs_cli.runtime import Runtime
from s2vs_cli.scoring.calibration import LEFT_OUT, ScoreIdentity, Thresholds
from s2vs_cli.scoring.duplicate_groups import (DuplicateGroup, DuplicatePair, PairMatch, choose_keeper,
                                               duplicate_groups, pair_relation)
from s2vs_cli.spreadsheet_cells import from_spreadsheet_safe
from s2vs_cli.storage.store import StoreIdentity
from test_search import _unit, write_store

runner = CliRunner()
IDENTITY = StoreIdentity("test", "test", 1.0, 512, dtype="float32")
ORDER = ["a-orig", "b-exact", "c-noisy", "d-excerpt", "e-left", "f-right", "u1", "u2", "u3"]
# What the source files would say; c-noisy's source is gone (None): its stored duration stands in.
FACTS = {"a-orig": {"duration": 20.0, "width": 640, "height": 480, "size": 900},
         "b-exact": {"duration": 19.0, "width": 1280, "height": 720, "size": 800},
         "d-excerpt": {"duration": 10.0, "width": 320, "height": 240, "size": 100},
         "e-left": {"duration": 20.0, "width": 640, "height": 480, "size": 500},
         "f-right": {"duration": 20.0, "width": 640, "height": 480, "size": 500}}
# Copied parts of unrelated random features only come out as short noise: a floor on their score keeps them out.
FLOORS = {"min_match_score": 0.5}


def planted() -> dict[str, np.ndarray]:
    """An original, its exact copy and a noisy (re-encoded-like) one, an excerpt of it (frames 5-14), two videos
    sharing a 10-frame part (the end of e-left is the start of f-right), and three unrelated ones."""
    rng = np.random.default_rng(0)

    def video(frames: int) -> np.ndarray:
        return _unit(rng.standard_normal((frames, 9, 512)))

    def noisy(x: np.ndarray) -> np.ndarray:
        return _unit(x + 0.02 * rng.standard_normal(x.shape))

    orig, head, shared, tail = video(20), video(10), video(10), video(10)
    return {"a-orig": orig, "b-exact": orig.copy(), "c-noisy": noisy(orig), "d-excerpt": noisy(orig[5:15]),
            "e-left": np.concatenate([head, shared]), "f-right": np.concatenate([noisy(shared), tail]),
            "u1": video(15), "u2": video(25), "u3": video(8)}


def facts_of(store, video_id: str) -> dict | None:
    return FACTS.get(video_id)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dedup") / "planted.h5"
    write_store(path, planted(), identity=IDENTITY)
    return path


@pytest.fixture(scope="module")
def found(store) -> DedupResult:
    """The planted store deduplicated, features only, every pair scored."""
    stages = []
    result = run_dedup([str(store)], DedupConfig(features_only=True, exhaustive=True, **FLOORS), Runtime.cpu(),
                       CallbackProgress(stage=stages.append), facts=facts_of)
    result.stages["progress"] = stages
    return result


def _pairs(result: DedupResult) -> dict[tuple[str, str], DuplicatePair]:
    return {(pair.a, pair.b): pair for pair in result.pairs}


def test_planted_pairs_have_their_relations_coverage_and_times(found):
    pairs = _pairs(found)
    excerpts = {(video, "d-excerpt") for video in ("a-orig", "b-exact", "c-noisy")}
    duplicates = {("a-orig", "b-exact"), ("a-orig", "c-noisy"), ("b-exact", "c-noisy")}
    assert set(pairs) == duplicates | excerpts | {("e-left", "f-right")}  # unrelated videos in no pair
    for key in duplicates:
        assert pairs[key].relation == "duplicate" and pairs[key].coverage == (1.0, 1.0)
        assert pairs[key].container is None
    for key in excerpts:
        pair = pairs[key]
        assert (pair.relation, pair.container, pair.coverage) == ("contains", key[0], (0.5, 1.0))
        assert [(m.a_start, m.a_end, m.b_start, m.b_end) for m in pair.matches] == [(5.0, 15.0, 0.0, 10.0)]
    overlap = pairs[("e-left", "f-right")]
    assert (overlap.relation, overlap.coverage) == ("overlap", (0.5, 0.5))
    assert [(m.a_start, m.a_end, m.b_start, m.b_end) for m in overlap.matches] == [(10.0, 20.0, 0.0, 10.0)]
    assert pairs[("a-orig", "b-exact")].similarity == pytest.approx(1.0, abs=1e-5)
    for pair in found.pairs:  # once each, a before b in the store's order, the mean of both directions
        assert ORDER.index(pair.a) < ORDER.index(pair.b)
        assert pair.similarity == pytest.approx(sum(pair.directions) / 2)
    assert [p.similarity for p in found.pairs] == sorted((p.similarity for p in found.pairs), reverse=True)
    assert found.stages["candidates"] == found.stages["scored"] == 36  # 9 videos: every unordered pair
    assert (found.stages["pairs"], found.stages["no_match"]) == (7, 29)
    assert found.stages["progress"][-2:] == ["scoring the candidate pairs both ways",
                                             "reading the facts of the grouped videos"]
    assert found.stages["progress"][0].startswith("common frames")  # boilerplate looked for first
    assert found.stages["common_frames"] == 0  # 9 videos: none of their frames is in MIN_VIDEOS of them
    assert set(found.stages["seconds"]) == {"start", "candidates", "scoring", "groups", "total"}
    assert found.relation_counts() == {"duplicate": 3, "contains": 3, "overlap": 1}


def test_duplicates_are_grouped_and_contains_or_overlap_only_linked(found):
    groups = [(group.members, group.links) for group in found.groups]
    assert groups == [(["a-orig", "b-exact", "c-noisy"], [1]), (["d-excerpt"], [0]), (["e-left"], [3]),
                      (["f-right"], [2])]


def test_keeper_and_facts_with_a_source_gone(found):
    group = found.groups[0]
    assert group.keep == "b-exact" and group.removable == ["a-orig", "c-noisy"]  # the most pixels
    assert group.facts["b-exact"]["width"] == 1280 and group.facts["b-exact"]["from"] == "source"
    assert group.facts["c-noisy"] == {"duration": 20.0, "width": None, "height": None, "fps": None, "bitrate": None,
                                      "size": None, "source": None, "from": "features"}
    paths, unknown = found.removable()
    assert (paths, unknown) == ([], ["a-orig", "c-noisy"])  # no source file recorded for either


def test_keeper_rules():
    facts = {"x": {"width": 640, "height": 480, "duration": 30.0, "size": 10},
             "y": {"width": 1280, "height": 720, "duration": 10.0, "size": 5},
             "z": {"width": 1280, "height": 720, "duration": 20.0, "size": None}}
    members = ["x", "y", "z"]
    assert choose_keeper(members, facts, "resolution") == "z"  # same pixels as y: the longer
    assert choose_keeper(members, facts, "duration") == "x"
    assert choose_keeper(members, facts, "size") == "x"
    assert choose_keeper(members, facts, "first") == "x"
    assert choose_keeper(["y", "w"], facts, "resolution") == "y"  # no facts rank lowest
    assert choose_keeper(["w", "v"], {}, "size") == "w"  # all unknown: the first


def test_keeper_ties_go_to_the_higher_bitrate_not_the_first_reencode():
    """Seen on a real run (make_boilerplate_collection.py): c2, v01 re-encoded at CRF 40 (82 kb/s), tied with v01
    (642 kb/s) on resolution and length, and was suggested as the keeper for sorting first."""
    same = {"duration": 14.0, "width": 640, "height": 360, "size": 143_662}
    facts = {"c2": {**same, "bitrate": 82_092}, "v01": {**same, "bitrate": 642_318}}
    for rule in ("resolution", "duration", "size"):
        assert choose_keeper(["c2", "v01"], facts, rule) == "v01", rule
    assert choose_keeper(["c2", "v01"], facts, "first") == "c2"
    assert choose_keeper(["c2", "v01"], {"c2": same, "v01": same}, "resolution") == "c2"  # no bitrates: the first


def test_pair_relation_names_the_container():
    assert pair_relation(0.9, 0.85, 0.8) == ("duplicate", None)
    assert pair_relation(0.95, 0.3, 0.8) == ("contains", "b")  # a lies inside b
    assert pair_relation(0.3, 0.8, 0.8) == ("contains", "a")
    assert pair_relation(0.5, 0.5, 0.8) == ("overlap", None)


def test_groups_never_merge_through_contains():
    def pair(a, b, relation, verdict=None):
        return DuplicatePair(a, b, 0.9, (0.9, 0.9), [PairMatch(0, 1, 0, 1, 0.9)], (1, 1), relation, verdict=verdict)

    order = list("abcdef")
    pairs = [pair("a", "b", "duplicate"), pair("c", "d", "duplicate"), pair("b", "c", "contains"),
             pair("d", "e", "duplicate", "not a copy"), pair("e", "f", "overlap")]
    assert duplicate_groups(order, pairs) == ([["a", "b"], ["c", "d"], ["e"], ["f"]], [[1], [0], [3], [2]])


def test_json_has_the_documented_keys(found):
    data = json.loads(json.dumps(found.as_dict()))
    assert list(data) == ["groups", "pairs", "settings", "random_weights", "stages"]
    assert set(data["groups"][0]) == {"members", "keep", "facts", "links"}
    excerpt = next(p for p in data["pairs"] if p["relation"] == "contains")
    assert set(excerpt) == {"a", "b", "similarity", "directions", "relation", "container", "coverage", "matches",
                            "decision"} and excerpt["decision"] is None
    assert set(excerpt["matches"][0]) == {"a_start", "a_end", "b_start", "b_end", "score"}
    assert data["settings"]["model"] == "features only" and data["settings"]["keep"] == "resolution"
    assert data["random_weights"] is False


def test_csv_tables_read_back(found, tmp_path):
    evil = DuplicateGroup(["=HYPERLINK(1)", "-x"], "-x", {"-x": {"duration": 1.5, "from": "features"}})
    result = DedupResult(found.groups + [evil], found.pairs, {}, False, {})
    pairs_csv, groups_csv = write_dedup_tables(result, tmp_path / "made" / "tables")
    with open(pairs_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == PAIR_COLUMNS and len(rows) == len(found.pairs)
    for row, pair in zip(rows, found.pairs):
        assert (row["a"], row["b"], float(row["similarity"]), row["relation"]) == (pair.a, pair.b, pair.similarity,
                                                                                   pair.relation)
        assert (float(row["coverage_a"]), float(row["coverage_b"]), int(row["matches"])) == (*pair.coverage, 1)
        assert float(row["a_start"]) == pair.matches[0].a_start and row["verdict"] == row["decision"] == ""
    with open(groups_csv, newline="") as handle:
        members = list(csv.DictReader(handle))
    assert tuple(members[0]) == GROUP_COLUMNS
    assert [(m["group"], m["id"], m["keep"]) for m in members[:3]] == [("0", "a-orig", "0"), ("0", "b-exact", "1"),
                                                                       ("0", "c-noisy", "0")]
    assert members[1]["width"] == "1280" and members[2]["facts_from"] == "features"
    written = [m["id"] for m in members[-2:]]
    assert written == ["'=HYPERLINK(1)", "'-x"]  # no formula runs in a spreadsheet
    assert [from_spreadsheet_safe(cell) for cell in written] == ["=HYPERLINK(1)", "-x"]


def test_thresholds_judge_pairs_and_only_copies_group(store, tmp_path):
    path = tmp_path / "thresholds.json"
    Thresholds(threshold=0.8, target_precision=0.95, precision=0.96, recall=0.9,
               identity=ScoreIdentity.of_store(None, IDENTITY), normalization=None,
               calibration_set={"name": "test"}, version="test", common_frames=LEFT_OUT).save(path)
    cfg = DedupConfig(features_only=True, exhaustive=True, thresholds=str(path), **FLOORS)
    result = run_dedup([str(store)], cfg, Runtime.cpu(), facts=facts_of)
    verdicts = {(p.a, p.b): p.verdict for p in result.pairs}
    assert len(verdicts) == 7  # "not a copy" pairs are still listed, with their verdict
    assert verdicts[("a-orig", "c-noisy")] == "copy" and verdicts[("a-orig", "d-excerpt")] == "not a copy"
    assert verdicts[("e-left", "f-right")] == "not a copy"
    assert [(g.members, g.links) for g in result.groups] == [(["a-orig", "b-exact", "c-noisy"], [])]
    assert result.settings["thresholds"]["threshold"] == 0.8


def test_full_visil_with_random_weights_runs(store):
    cfg = DedupConfig(model="random", exhaustive=True)
    result = run_dedup([str(store)], cfg, Runtime.cpu(), facts=facts_of)
    pairs = _pairs(result)
    assert pairs[("a-orig", "b-exact")].relation == "duplicate"  # the same features: the same map
    for pair in result.pairs:
        assert pair.similarity == pytest.approx(sum(pair.directions) / 2)
    assert result.random_weights and result.settings["model"].startswith("random")


def _dedup(*args: str):
    return runner.invoke(app, ["dedup", *args])


@pytest.fixture(scope="module")
def halves(store, tmp_path_factory) -> tuple[Path, Path]:
    """The planted videos in two feature files, and a third sharing an id with the first."""
    folder, videos = tmp_path_factory.mktemp("halves"), planted()
    first, second, clash = folder / "first.h5", folder / "second.h5", folder / "clash.h5"
    write_store(first, {k: videos[k] for k in ORDER[:3]}, identity=IDENTITY)
    write_store(second, {k: videos[k] for k in ORDER[3:]}, identity=IDENTITY)
    write_store(clash, {"b-exact": videos["u1"]}, identity=IDENTITY)
    return first, second, clash


def test_several_files_are_one_collection(halves, found):
    first, second, _ = halves
    result = _dedup(str(first), str(second), "--exhaustive", "--features-only", "--min-match-score", "0.5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(p["a"], p["b"], p["relation"]) for p in data["pairs"]] == [(p.a, p.b, p.relation) for p in found.pairs]
    assert data["groups"][0]["members"] == ["a-orig", "b-exact", "c-noisy"]


def test_an_id_in_two_files_is_a_one_line_error(halves):
    first, _, clash = halves
    result = _dedup(str(first), str(clash), "--exhaustive", "--features-only")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: 'b-exact' is in both {first} and {clash}: an id may be in only one of the feature files"]


def test_usage_errors(halves, store):
    first, second, _ = halves
    assert _dedup(str(first), str(second), "--features-only").exit_code == 2  # the self-join reads one file
    assert "s2vs merge" in _dedup(str(first), str(second), "--features-only").stderr
    twice = _dedup(str(first), str(first.parent / "." / first.name), "--exhaustive")
    assert twice.exit_code == 2 and "is given twice" in twice.stderr
    nowhere = _dedup(str(store), "--features-only", "-o", str(store.parent / "missing" / "out.json"))
    assert nowhere.exit_code == 1 and "cannot write here" in nowhere.stderr  # before any work
    not_a_folder = _dedup(str(store), "--features-only", "--csv", str(store))
    assert not_a_folder.exit_code == 1 and "is not a folder" in not_a_folder.stderr
    assert _dedup(str(store), "--keep", "largest").exit_code == 2
    assert _dedup(str(store), "--duplicate-coverage", "0").exit_code == 2
    assert _dedup(str(store), "--print-removable", "--json").exit_code == 2
    assert _dedup(str(store), "-0").exit_code == 2
    with pytest.raises(ConfigError, match="neighbours"):
        DedupConfig(neighbours=0)
    probes = _dedup(str(store), "--probes", "0")
    assert probes.exit_code == 2 and "probes must be at least 1, got 0" in probes.stderr
    printed = _dedup(str(store), "--keep", "size", "--print-config")
    assert printed.exit_code == 0 and "keep: size" in printed.stdout and "duplicate_coverage: 0.8" in printed.stdout
    config = store.parent / "dedup.yaml"
    config.write_text("keep: duration\nduplicate_coverage: 0.9\nneighbours: 20\n")
    printed = _dedup(str(store), "--config", str(config), "--keep", "first", "--print-config")
    assert ("keep: first" in printed.stdout and "duplicate_coverage: 0.9" in printed.stdout
            and "neighbours: 20" in printed.stdout)  # the flag wins over the file


def test_print_removable_prints_only_paths(store, tmp_path, monkeypatch):
    sources = {video: tmp_path / f"{video}.mp4" for video in FACTS}
    for path in sources.values():
        path.write_bytes(b"")
    monkeypatch.setattr("s2vs_cli.jobs.dedup.recorded_source_facts",
                        lambda s, video: None if video not in FACTS else FACTS[video] | {"source": str(sources[video])})
    common = [str(store), "--exhaustive", "--features-only", "--min-match-score", "0.5", "--print-removable"]
    null = _dedup(*common, "-0", "-o", str(tmp_path / "out.json"))
    assert null.exit_code == 0, null.output
    assert null.stdout == f"{sources['a-orig']}\0"  # c-noisy's source is gone: named on stderr, not printed
    assert "1 removable video not printed" in null.stderr and "c-noisy" in null.stderr
    assert json.loads((tmp_path / "out.json").read_text())["groups"][0]["keep"] == "b-exact"
    lines = _dedup(*common, "--keep", "first")
    assert lines.stdout == f"{sources['b-exact']}\n"
    assert all(path.exists() for path in sources.values())  # nothing moved or deleted


# --- end to end, on real clips ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clips(videos_dir, tmp_path_factory) -> Path:
    """A feature file of four short clips and a cropped, scaled, re-encoded copy of one (random weights)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is not installed (apt-get install ffmpeg)")
    folder = tmp_path_factory.mktemp("clips")
    made = folder / "videos"
    made.mkdir()
    edits = {"bikes": [], "bikes-copy": ["-vf", "crop=iw*0.8:ih*0.8,scale=320:-2", "-crf", "34"]}
    for name, edit in edits.items():
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(videos_dir / "bikes.mp4"), "-t", "4", *edit,
                        "-c:v", "libx264", str(made / f"{name}.mp4")], check=True)
    for name in ("walk.mkv", "night.mkv"):
        shutil.copy(videos_dir / name, made / name)
    features = folder / "clips.h5"
    done = runner.invoke(app, ["extract-features", str(made), "-o", str(features), "--backbone-weights", "random",
                               "--pca", "random", "--precision", "fp32", "--workers", "0", "--quiet"])
    assert done.exit_code == 0, done.output
    return features


def test_end_to_end_copy_of_a_real_clip_is_a_grouped_duplicate(clips, tmp_path):
    out = tmp_path / "duplicates.json"
    # fp32: the copy's first frame is left out as low-information (random weights), and 3-frame maps in bf16 lose
    # their last frame to rounding on some CPUs
    result = _dedup(str(clips), "--exhaustive", "--features-only", "--backbone-weights", "random", "--pca", "random",
                    "--precision", "fp32", "-o", str(out), "--csv", str(tmp_path / "tables"), "--report", str(tmp_path / "dups.html"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "dups.html").read_text()
    assert "bikes-copy" in page and "dedup" in page  # the review page of the same result (test_dedup_report.py)
    data = json.loads(out.read_text())
    pair = next(p for p in data["pairs"] if (p["a"], p["b"]) == ("bikes", "bikes-copy"))
    assert pair["relation"] == "duplicate" and min(pair["coverage"].values()) >= 0.8
    group = next(g for g in data["groups"] if "bikes" in g["members"])
    assert group["members"] == ["bikes", "bikes-copy"] and group["keep"] == "bikes"  # the larger picture
    assert (group["facts"]["bikes"]["width"], group["facts"]["bikes-copy"]["width"]) == (640, 320)
    assert data["random_weights"] is True and "random weights" in result.stderr
    assert "bikes-copy" in result.stdout and (tmp_path / "tables" / "groups.csv").is_file()


def test_self_join_candidates_are_scored_as_ids(store, monkeypatch):
    """The self-join's pairs (catalogue numbers, either order, repeated) become the scored pairs, named by id."""
    import types

    from s2vs_cli.storage.index import open_index

    names = open_index(store)[0].catalogue.ids
    number = {video: n for n, video in enumerate(names)}
    asked = {}

    def candidate_pairs(index, **options):
        asked.update(options)
        first = [number["b-exact"], number["a-orig"], number["e-left"]]
        second = [number["a-orig"], number["b-exact"], number["u1"]]
        return types.SimpleNamespace(first=np.array(first), second=np.array(second), coarse=np.ones(3),
                                     frame_level=np.ones(3), stages={"index": 3})

    monkeypatch.setattr("s2vs_cli.jobs.dedup.candidate_pairs", candidate_pairs)
    cfg = DedupConfig(features_only=True, neighbours=7, min_frame_level=0.3, **FLOORS)
    result = run_dedup([str(store)], cfg, Runtime.cpu(), facts=facts_of)
    assert (asked["neighbours"], asked["min_frame_level"]) == (7, 0.3)
    assert result.stages["candidates"] == 2 and result.stages["self_join"] == {"index": 3}
    assert [(p.a, p.b, p.relation) for p in result.pairs] == [("a-orig", "b-exact", "duplicate")]


def test_blocks_keep_few_map_cells_and_score_earlier_partners_without_maps(monkeypatch):
    from s2vs_cli.jobs import dedup

    monkeypatch.setattr(dedup, "MAP_CELLS", 100)
    frames = {0: 10, 1: 10, 2: 10, 3: 10, 4: 2}  # 4 is seen as 4 frames (repeated for the comparator)
    assert dedup._blocks(2, [4, 0, 3, 1], frames) == [[0, 1], [3], [4]]


def test_pairs_scored_in_chunks_are_located_on_their_whole_map(store, found, monkeypatch):
    """A long video is scored in chunks and keeps no map: its pairs are located on a map made again."""
    from functools import partial

    from s2vs_cli.jobs import dedup

    monkeypatch.setattr(dedup, "VideoScorer", partial(dedup.VideoScorer, chunk_frames=8))
    result = run_dedup([str(store)], DedupConfig(features_only=True, exhaustive=True, **FLOORS), Runtime.cpu(),
                       facts=facts_of)
    def where(pairs):
        return {(p.a, p.b): (p.relation, p.coverage, [(m.a_start, m.a_end, m.b_start, m.b_end) for m in p.matches])
                for p in pairs}

    assert where(result.pairs) == where(found.pairs)
    scores = {(p.a, p.b): p.matches[0].score for p in found.pairs}
    assert all(p.matches[0].score == pytest.approx(scores[(p.a, p.b)], abs=1e-5) for p in result.pairs)


def test_files_of_other_extractors_are_refused(halves, tmp_path):
    first, _, _ = halves
    other = tmp_path / "other.h5"
    write_store(other, {"z": planted()["u1"]}, identity=StoreIdentity("other", "test", 1.0, 512, dtype="float32"))
    result = _dedup(str(first), str(other), "--exhaustive", "--features-only")
    assert result.exit_code == 2
    assert (f"{other} was made with other settings than {first}, which this run follows: backbone 'other' "
            "(this run: 'test')") in result.stderr


def test_a_shared_intro_is_no_copy_unless_common_frames_are_kept(tmp_path):
    """Nine unrelated videos opening with one 4-frame intro are not duplicates of each other (the intro is
    boilerplate: in MIN_VIDEOS videos or more); a real copy still is; --keep-common-frames lists the intro pairs."""
    rng = np.random.default_rng(1)

    def video(frames: int) -> np.ndarray:
        return _unit(rng.standard_normal((frames, 9, 512)))

    intro, original = video(4), video(16)
    videos = {f"v{n}": np.concatenate([intro, video(12)]) for n in range(9)}
    videos |= {"orig": original, "copy": _unit(original + 0.02 * rng.standard_normal(original.shape))}
    path = tmp_path / "intros.h5"
    write_store(path, videos, identity=IDENTITY)
    found = {}
    for keep in (False, True):
        cfg = DedupConfig(features_only=True, exhaustive=True, keep_common_frames=keep, **FLOORS)
        result = run_dedup([str(path)], cfg, Runtime.cpu(), facts=facts_of)
        found[keep] = {(pair.a, pair.b): pair for pair in result.pairs}
    assert set(found[False]) == {("copy", "orig")} and found[False][("copy", "orig")].relation == "duplicate"
    intro_pairs = {pair for pair in found[True] if pair != ("copy", "orig")}
    assert len(intro_pairs) == 36 and all(found[True][pair].relation == "overlap" for pair in intro_pairs)
    assert all([(m.a_start, m.a_end) for m in found[True][pair].matches] == [(0.0, 4.0)] for pair in intro_pairs)


def test_the_self_join_finds_what_scoring_every_pair_finds(store, found):
    """Without --exhaustive (the index's self-join, stages 1-2, then ViSiL's stage): the same pairs, relations and
    groups as scoring all 36 pairs, from fewer candidates."""
    cfg = DedupConfig(features_only=True, **FLOORS)
    joined = run_dedup([str(store)], cfg, Runtime.cpu(), facts=facts_of)
    assert _rounded([pair.as_dict() for pair in joined.pairs]) == _rounded([pair.as_dict() for pair in found.pairs])
    assert _rounded([group.as_dict() for group in joined.groups]) == _rounded([group.as_dict() for group in found.groups])
    assert joined.stages["candidates"] < found.stages["candidates"] == 36
    assert set(joined.stages["self_join"]) >= {"segments", "frame_level"}


@pytest.mark.slow
def test_torchrun_two_ranks_give_what_one_process_gives(store, tmp_path):
    """Under torchrun the ranks split the self-join and the scoring; rank 0 merges and alone writes and prints."""
    import os
    import socket
    import subprocess
    import sys

    if not torch_distributed_available():
        pytest.skip("torch.distributed with gloo is not available")
    one, two, fresh = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "planted.h5"
    shutil.copy(store, fresh)  # no index yet: rank 0 builds it while rank 1 waits
    options = ["--features-only", "--min-match-score", "0.5", "--json"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "s2vs_cli", "dedup",
                               str(fresh), *options, "-o", str(two)],
                              capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert len(launched.stdout.strip().splitlines()) == 1  # only rank 0 prints its JSON
    assert _dedup(str(fresh), *options, "-o", str(one)).exit_code == 0
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert _rounded(a["pairs"]) == _rounded(b["pairs"]) and a["groups"] == b["groups"] and len(a["pairs"]) == 7


def _rounded(value):
    """A JSON-like value with every float to 6 significant digits: a pair scored beside other partners (another
    block, another rank) meets products of other widths, whose sums may differ in float32's last bit."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def torch_distributed_available() -> bool:
    import torch

    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


def test_compares_collection_key_is_refused_not_ignored(store):
    with pytest.raises(ConfigError, match="collection is compare's key"):
        run_dedup([str(store)], DedupConfig(features_only=True, collection=str(store)), Runtime.cpu())


def _decisions_file(path: Path) -> Path:
    videos = {video: {"source": None} for video in ORDER + ["gone"]}
    path.write_text(json.dumps({"format": "s2vs-decisions", "version": 1, "videos": videos, "pairs": [
        {"a": "c-noisy", "b": "a-orig", "label": "not_copy"},   # found, marked not a copy: never comes back
        {"a": "u1", "b": "u2", "label": "copy"},                # not found, marked a copy: scored and grouped
        {"a": "e-left", "b": "f-right", "label": "copy"},       # an overlap marked a copy: one group
        {"a": "u3", "b": "gone", "label": "not_copy"}],         # about a video no longer in the store
        "keep": ["a-orig"]}))                                  # not the rule's keeper (b-exact, 1280x720)
    return path


def test_decisions_drop_force_and_keep(store, found, tmp_path):
    decisions = _decisions_file(tmp_path / "decisions.json")
    before = decisions.read_bytes()
    cfg = DedupConfig(features_only=True, exhaustive=True, decisions=str(decisions), **FLOORS)
    result = run_dedup([str(store)], cfg, Runtime.cpu(), facts=facts_of)
    pairs = _pairs(result)
    assert ("a-orig", "c-noisy") in _pairs(found) and ("a-orig", "c-noisy") not in pairs
    assert set(pairs) == set(_pairs(found)) - {("a-orig", "c-noisy")} | {("u1", "u2")}
    forced = pairs[("u1", "u2")]
    assert (forced.decision, forced.matches, forced.coverage, forced.relation) == ("copy", [], (0.0, 0.0), "overlap")
    assert pairs[("e-left", "f-right")].decision == "copy" and pairs[("a-orig", "b-exact")].decision is None
    groups = {tuple(group.members): group for group in result.groups}
    assert groups[("a-orig", "b-exact", "c-noisy")].keep == "a-orig"  # still one group through b-exact
    assert ("e-left", "f-right") in groups and ("u1", "u2") in groups
    assert result.stages["decisions"] == {"applied": 4, "not_copy_dropped": 1, "copy_forced": 2, "copy_added": 0,
                                          "not_in_collection": 1}  # every pair is a candidate: none to add
    assert result.stages["candidates"] == result.stages["scored"] == 35  # 36 pairs less the one marked not_copy
    assert result.settings["decisions"] == str(decisions)
    assert decisions.read_bytes() == before  # the entry about "gone" is kept: the file is never rewritten
    listed = json.loads(json.dumps(result.as_dict()))["pairs"]
    assert {(p["a"], p["b"]): p["decision"] for p in listed}[("u1", "u2")] == "copy"
    pairs_csv, _ = write_dedup_tables(result, tmp_path / "tables")
    with open(pairs_csv, newline="") as handle:
        rows = {(row["a"], row["b"]): row for row in csv.DictReader(handle)}
    assert rows[("u1", "u2")]["decision"] == "copy" and rows[("u1", "u2")]["a_start"] == ""
    assert rows[("a-orig", "b-exact")]["decision"] == ""
    joined = run_dedup([str(store)], DedupConfig(features_only=True, decisions=str(decisions), **FLOORS), Runtime.cpu(),
                       facts=facts_of)  # the self-join does not propose u1-u2: the decision adds it
    assert joined.stages["decisions"]["copy_added"] >= 1 and _pairs(joined)[("u1", "u2")].decision == "copy"
    assert ("a-orig", "c-noisy") not in _pairs(joined)


def test_decisions_on_the_command_line(store, tmp_path):
    decisions = _decisions_file(tmp_path / "decisions.json")
    common = [str(store), "--exhaustive", "--features-only", "--min-match-score", "0.5"]
    done = _dedup(*common, "--decisions", str(decisions), "-o", str(tmp_path / "out.json"))
    assert done.exit_code == 0, done.output
    assert f"note: 1 decision about videos not in this collection: kept in {decisions}, not applied" in done.stderr
    assert json.loads((tmp_path / "out.json").read_text())["stages"]["decisions"]["not_copy_dropped"] == 1
    decisions.write_text(decisions.read_text().replace('"copy"', '"dup"', 1))
    bad = _dedup(*common, "--decisions", str(decisions))
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [f"error: {decisions}: pairs[1]: unknown label 'dup' (copy or not_copy)"]
