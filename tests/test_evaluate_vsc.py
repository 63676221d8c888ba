"""`s2vs evaluate --dataset VSC22`: the official numbers through the CLI, both tracks from features and from raw
videos in the challenge's layout, saved predictions read back, and one-line errors for malformed CSVs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.datasets.vsc import CopiedSegment, read_pairs, read_segments
from s2vs_cli.datasets.vsc22 import VSC22Benchmark, load_vsc22, predicted_pairs, video_sets
from s2vs_cli.cli import app
from s2vs_cli.jobs.evaluate_vsc import discover_ids
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity

runner = CliRunner()
GROUND_TRUTH_HEADER = "query_id,ref_id,query_start,query_end,ref_start,ref_end\n"
MATCHES_HEADER = "query_id,ref_id,query_start,query_end,ref_start,ref_end,score\n"


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here runs offline (conftest's `offline`)."""


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _evaluate(*args: str):
    return runner.invoke(app, ["evaluate", "--dataset", "VSC22", *map(str, args)])


# ---------------------------------------------------------------------------------------------
# The official code's numbers on ../shared/parity/vsc


def test_saved_matches_give_the_official_numbers(parity_dir):
    folder = parity_dir / "vsc"
    expected = json.loads((folder / "expected.json").read_text())
    summary = _json(_evaluate("--ground-truth", folder / "ground_truth.csv", "--from-matches",
                              folder / "matches.csv", "--json"))
    assert list(summary["metrics"]) == ["pair_uAP", "matching_uAP"]
    assert summary["metrics"]["matching_uAP"] == pytest.approx(expected["matching_segment_ap"], abs=1e-6)
    assert summary["metrics"]["pair_uAP"] == pytest.approx(expected["matching_pairwise_micro_ap"], abs=1e-6)
    assert summary["predictions"]["predicted_segments"] == expected["predicted_matches"]
    shown = _evaluate("--ground-truth", folder / "ground_truth.csv", "--from-matches", folder / "matches.csv")
    assert shown.exit_code == 0 and "matching_uAP" in shown.output and "0.5656" in shown.output


def test_saved_candidates_give_the_official_descriptor_number(parity_dir):
    folder = parity_dir / "vsc"
    expected = json.loads((folder / "expected.json").read_text())
    summary = _json(_evaluate("--ground-truth", folder / "ground_truth.csv", "--from-similarities",
                              folder / "candidates.csv", "--json"))
    assert list(summary["metrics"]) == ["pair_uAP"]
    assert summary["metrics"]["pair_uAP"] == pytest.approx(expected["descriptor_micro_ap"], abs=1e-6)
    assert summary["predictions"] == {"predicted_pairs": expected["candidate_pairs"]}
    assert "matching track (matching_uAP) needs segments" in summary["segment_note"]


# ---------------------------------------------------------------------------------------------
# From a feature file: queries with planted copies (and some without), references, features only


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def write_planted_set(folder: Path, seed: int = 0) -> list[CopiedSegment]:
    """features.h5 of 6 queries and 8 references (1 frame a second, 9 × 64 random regions): Q100000-Q100003
    each hold 1 or 2 noisy excerpts of references between unrelated frames, Q100004-5 none; gt.csv says where."""
    rng = np.random.default_rng(seed)
    refs = {f"R{200000 + i}": rng.standard_normal((24, 9, 64)) for i in range(8)}
    videos, truth = dict(refs), []
    plan = {0: [(1, 3, 8)], 1: [(2, 0, 6), (5, 10, 7)], 2: [(7, 12, 9)], 3: [(1, 14, 6), (4, 2, 5)], 4: [], 5: []}
    for q, copies in plan.items():
        query_id, parts, t = f"Q{100000 + q}", [], 0
        for ref, start, length in copies:
            parts.append(rng.standard_normal((3, 9, 64)))
            ref_id = f"R{200000 + ref}"
            parts.append(refs[ref_id][start:start + length] + 0.5 * rng.standard_normal((length, 9, 64)))
            truth.append(CopiedSegment(query_id, ref_id, t + 3.0, t + 3.0 + length, start, start + length))
            t += 3 + length
        parts.append(rng.standard_normal((4, 9, 64)))
        videos[query_id] = np.concatenate(parts)
    identity = StoreIdentity("test", "test", 1.0, 64, dtype="float32")
    with PartWriter(folder / "parts", identity, "test", dtype="float32") as writer:
        for name, x in videos.items():
            writer.add(name, _unit(x), np.arange(len(x), dtype=float))
    merge_parts(folder / "features.h5", writer.written, identity, "test")
    (folder / "gt.csv").write_text(GROUND_TRUTH_HEADER + "".join(
        f"{s.query_id},{s.ref_id},{s.query_start},{s.query_end},{s.ref_start},{s.ref_end}\n" for s in truth))
    return truth


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, list[CopiedSegment], dict, Path]:
    """The planted set, evaluated once from its features with every output saved."""
    folder = tmp_path_factory.mktemp("vsc_planted")
    truth = write_planted_set(folder)
    result = _evaluate("--ground-truth", folder / "gt.csv", "--dataset-hdf5", folder / "features.h5",
                       "--features-only", "--json", "--save-matches", folder / "matches.csv",
                       "--save-similarities", folder / "pairs.csv", "-o", folder / "results.json")
    return folder, truth, _json(result), folder / "matches.csv"


def test_both_tracks_from_features_find_every_planted_copy(planted):
    folder, truth, summary, matches_file = planted
    # 6 queries (2 without copies) × 8 references: every pair is predicted (25 a query allowed).
    assert (summary["queries"], summary["database"]) == (6, 8)
    assert summary["predictions"]["predicted_pairs"] == 48
    assert summary["metrics"]["pair_uAP"] == 1.0
    assert summary["metrics"]["matching_uAP"] > 0.9
    assert json.loads((folder / "results.json").read_text())["metrics"] == summary["metrics"]
    matches = read_segments(matches_file)
    assert len(matches) == summary["predictions"]["predicted_segments"]
    for copy in truth:  # each planted copy is predicted: a segment of its pair covering most of it, both axes
        best = max((m for m in matches if m.pair == copy.pair),
                   key=lambda m: min(m.query_end, copy.query_end) - max(m.query_start, copy.query_start))
        assert min(best.query_end, copy.query_end) - max(best.query_start, copy.query_start) >= 0.8 * (
            copy.query_end - copy.query_start)
        assert min(best.ref_end, copy.ref_end) - max(best.ref_start, copy.ref_start) >= 0.8 * (
            copy.ref_end - copy.ref_start)


def test_saved_predictions_read_back_give_the_same_numbers(planted):
    folder, _, summary, matches_file = planted
    from_matches = _json(_evaluate("--ground-truth", folder / "gt.csv", "--from-matches", matches_file, "--json"))
    assert from_matches["metrics"]["matching_uAP"] == summary["metrics"]["matching_uAP"]
    # From segments, a pair's score is its best segment's (the official matching track's pairwise µAP).
    from_pairs = _json(_evaluate("--ground-truth", folder / "gt.csv", "--from-similarities", folder / "pairs.csv",
                                 "--json"))
    assert from_pairs["metrics"]["pair_uAP"] == summary["metrics"]["pair_uAP"]
    assert len(read_pairs(folder / "pairs.csv")) == summary["predictions"]["predicted_pairs"]


def test_the_official_limit_cuts_the_predicted_pairs(planted, tmp_path):
    folder, _, summary, _ = planted
    cut = _json(_evaluate("--ground-truth", folder / "gt.csv", "--dataset-hdf5", folder / "features.h5",
                          "--features-only", "--pairs-per-query", "1", "--json", "--save-similarities",
                          tmp_path / "s.json"))
    assert cut["predictions"]["predicted_pairs"] == 6  # 1 × 6 queries: the 6 best pairs of all
    # 6 true pairs, all scored above every other pair: the 6 best are the true ones.
    assert cut["metrics"]["pair_uAP"] == 1.0
    # Every score is saved in .json; the cut is made again when it is read back.
    again = _json(_evaluate("--ground-truth", folder / "gt.csv", "--from-similarities", tmp_path / "s.json",
                            "--pairs-per-query", "1", "--json"))
    assert again["metrics"] == {"pair_uAP": 1.0} and again["predictions"] == {"predicted_pairs": 6}
    assert len(json.loads((tmp_path / "s.json").read_text())["Q100000"]) == 8


def test_metadata_lists_the_sets_and_missing_videos_are_counted(planted, tmp_path):
    folder, _, _, _ = planted
    (tmp_path / "train_query_metadata.csv").write_text(
        "video_id,duration_sec\n" + "".join(f"Q{100000 + q},30\n" for q in range(7)))  # Q100006: no features
    (tmp_path / "train_reference_metadata.csv").write_text(
        "video_id\n" + "".join(f"R{200000 + r}\n" for r in range(8)))
    summary = _json(_evaluate("--ground-truth", folder / "gt.csv", "--dataset-hdf5", folder / "features.h5",
                              "--features-only", "--annotations", tmp_path, "--pairs-per-query", "1", "--json"))
    assert summary["missing_queries"] == ["Q100006"] and summary["queries"] == 6
    strict = _evaluate("--ground-truth", folder / "gt.csv", "--dataset-hdf5", folder / "features.h5",
                       "--features-only", "--annotations", tmp_path, "--pairs-per-query", "1", "--strict")
    assert strict.exit_code == 1 and "--strict refuses" in strict.output


def test_library_loading_and_copies(planted):
    folder, truth, _, _ = planted
    benchmark = load_vsc22(folder / "gt.csv", video_sets(None), available=["Q100005", "R200009", "x"])
    assert isinstance(benchmark, VSC22Benchmark)
    assert "Q100005" in benchmark.queries and "R200009" in benchmark.database and "x" not in benchmark.video_ids()
    assert benchmark.copies()["Q100001"] == frozenset({"R200002", "R200005"})
    sims = {"Q1": {"R1": 0.2, "R2": 0.9}, "Q2": {"R1": 0.5, "R2": 0.1}}
    assert [(p.query_id, p.ref_id) for p in predicted_pairs(sims, ["Q1", "Q2"], ["R1", "R2"], 1)] == [
        ("Q1", "R2"), ("Q2", "R1")]


def test_discovered_ids_follow_the_pattern(tmp_path):
    for name in ("query/Q1.mp4", "query/.Q2.mp4", "reference/R7.mp4", "reference/notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    assert discover_ids(tmp_path, "*/{id}.mp4") == ["Q1", "R7"]
    assert discover_ids(tmp_path, "query/{id}.*") == ["Q1"]


# ---------------------------------------------------------------------------------------------
# Malformed input: one line naming the file and the row, exit 2


@pytest.mark.parametrize("file, text, message", [
    ("gt", "query_id,ref_id,query_start,query_end,ref_start\nQ1,R1,0,1,0\n", "gt.csv: row 1: missing column ref_end"),
    ("gt", GROUND_TRUTH_HEADER + "Q1,R1,0,4,0,4\nQ2,R1,5,2,0,1\n",
     "gt.csv: row 3: query_end 2 is before query_start 5"),
    ("gt", GROUND_TRUTH_HEADER + "Q1,R1,0,4,0,4\nR2,R1,0,1,0,1\n",
     "gt.csv: row 3: query_id 'R2' is not a query id (the challenge's are Q + digits)"),
    ("gt", GROUND_TRUTH_HEADER + "Q1,R1,0,4,zero,4\n", "gt.csv: row 2: ref_start is not a number: 'zero'"),
    ("matches", MATCHES_HEADER + "Q1,R1,0,4,0,4,0.9\nQ1,X1,0,4,0,4,0.9\n",
     "matches.csv: row 3: ref_id 'X1' is not a reference id (the challenge's are R + digits)"),
    ("matches", MATCHES_HEADER + "Q1,R1,0,4,9,4,0.9\n", "matches.csv: row 2: ref_end 4 is before ref_start 9"),
    ("matches", "query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R1,0,4,0,4\n",
     "matches.csv: row 1: missing column score"),
    ("candidates", "query_id,ref_id,score\nQ1,R1,0.5\nQ1,R1,0.4\n",
     "candidates.csv: row 3: the pair (Q1, R1) is listed twice (first in row 2)"),
    ("candidates", "query_id,ref_id,score\nQ1,R1,high\n", "candidates.csv: row 2: score is not a number: 'high'"),
])
def test_malformed_csv_is_one_line_and_exit_2(tmp_path, file, text, message):
    files = {"gt": GROUND_TRUTH_HEADER + "Q1,R1,0,4,0,4\n", "matches": MATCHES_HEADER + "Q1,R1,0,4,0,4,0.9\n",
             "candidates": "query_id,ref_id,score\nQ1,R1,0.5\n"}
    files[file] = text
    for name, content in files.items():
        (tmp_path / f"{name}.csv").write_text(content)
    source = "--from-similarities" if file == "candidates" else "--from-matches"
    result = _evaluate("--ground-truth", tmp_path / "gt.csv", source,
                       tmp_path / ("candidates.csv" if file == "candidates" else "matches.csv"))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output, result.output
    assert str(tmp_path / f"{file}.csv") in result.output


def test_an_id_outside_the_metadata_is_unknown(tmp_path):
    (tmp_path / "query_metadata.csv").write_text("video_id\nQ1\nQ2\n")
    (tmp_path / "reference_metadata.csv").write_text("video_id\nR1\n")
    (tmp_path / "gt.csv").write_text(GROUND_TRUTH_HEADER + "Q1,R1,0,4,0,4\n")
    (tmp_path / "matches.csv").write_text(MATCHES_HEADER + "Q1,R1,0,4,0,4,0.9\nQ3,R1,0,4,0,4,0.5\n")
    result = _evaluate("--ground-truth", tmp_path / "gt.csv", "--from-matches", tmp_path / "matches.csv",
                       "--annotations", tmp_path)
    assert result.exit_code == 2
    assert f"matches.csv: row 3: query_id 'Q3' is not a query of {tmp_path}'s metadata" in result.output
    (tmp_path / "matches.csv").write_text(MATCHES_HEADER + "Q1,R1,0,4,0,4,0.9\n")
    summary = _json(_evaluate("--ground-truth", tmp_path / "gt.csv", "--from-matches", tmp_path / "matches.csv",
                              "--annotations", tmp_path, "--json"))
    assert (summary["queries"], summary["database"]) == (2, 1)  # Q2, without copies, is a query all the same


@pytest.mark.parametrize("args, message", [
    (["--from-matches", "m.csv"], "--dataset VSC22 needs --ground-truth GT.csv"),
    (["--ground-truth", "gt.csv", "--from-matches", "m.csv", "--from-similarities", "c.csv"],
     "or matches (--from-matches FILE.csv), one of them"),
    (["--ground-truth", "gt.csv", "--from-matches", "m.csv", "--save-matches", "out.csv"],
     "--save-matches writes the segments located on features"),
    (["--ground-truth", "gt.csv", "--from-matches", "m.json"], "--from-matches takes the challenge's CSV layout"),
    (["--ground-truth", "gt.csv", "--from-matches", "m.csv", "--annotations", "nowhere"], "nowhere: not a folder"),
    (["--ground-truth", "gt.csv", "--from-matches", "m.csv", "--pairs-per-query", "0"],
     "pairs_per_query must be at least 1"),
])
def test_usage_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt.csv").write_text(GROUND_TRUTH_HEADER + "Q1,R1,0,4,0,4\n")
    (tmp_path / "m.csv").write_text(MATCHES_HEADER + "Q1,R1,0,4,0,4,0.9\n")
    result = _evaluate(*args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_malformed_ground_truth_stops_before_the_models_load(planted, tmp_path):
    folder, _, _, _ = planted
    (tmp_path / "gt.csv").write_text(GROUND_TRUTH_HEADER + "Q100000,R200001,3,11,zero,11\n")
    result = _evaluate("--ground-truth", tmp_path / "gt.csv", "--dataset-hdf5", folder / "features.h5",
                       "--model", "s2vs_dns")  # offline, not cached: loading it would fail otherwise
    assert result.exit_code == 2 and "gt.csv: row 2: ref_start is not a number: 'zero'" in result.output


def test_matches_options_belong_to_vsc22():
    result = runner.invoke(app, ["evaluate", "--dataset", "custom", "--from-matches", "m.csv"])
    assert result.exit_code == 2 and "--from-matches goes with --dataset VSC22" in result.output


# ---------------------------------------------------------------------------------------------
# Raw videos in the challenge's layout


@pytest.mark.slow
def test_end_to_end_on_videos_in_the_challenges_layout(tmp_path):
    """query/ and reference/ folders of tiny videos beside the metadata CSVs; a random backbone, features only."""
    from media import write_video

    rng = np.random.default_rng(0)

    def scenes(count: int) -> list[np.ndarray]:  # one distinct blocky picture a second
        return [np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((12, 12, 1))).astype(np.uint8) for _ in range(count)]

    data = tmp_path / "train"
    for sub in ("query", "reference"):
        (data / sub).mkdir(parents=True)
    reference = scenes(12)
    write_video(data / "reference" / "R200001.mp4", reference, rate=1)
    write_video(data / "reference" / "R200002.mp4", scenes(10), rate=1)
    write_video(data / "query" / "Q100001.mp4", scenes(3) + reference[2:9] + scenes(3), rate=1)  # R200001 2-9 s at 3 s
    write_video(data / "query" / "Q100002.mp4", scenes(8), rate=1)
    (data / "train_query_metadata.csv").write_text("video_id\nQ100001\nQ100002\n")
    (data / "train_reference_metadata.csv").write_text("video_id\nR200001\nR200002\nR200003\n")  # R200003: absent
    (data / "gt.csv").write_text(GROUND_TRUTH_HEADER + "Q100001,R200001,3,10,2,9\n")
    summary = _json(_evaluate("--ground-truth", data / "gt.csv", "--dataset-path", data, "--features-only",
                              "--backbone-weights", "random", "--pca", "none", "-j", "0", "--json",
                              "--save-matches", tmp_path / "matches.csv"))
    assert summary["metrics"]["pair_uAP"] == 1.0 and summary["metrics"]["matching_uAP"] > 0.7
    assert summary["missing_database"] == ["R200003"] and (summary["queries"], summary["database"]) == (2, 2)
    best = max(read_segments(tmp_path / "matches.csv"), key=lambda s: s.score)
    assert best.pair == ("Q100001", "R200001")
    assert abs(best.query_start - 3) <= 1 and abs(best.ref_start - 2) <= 1
