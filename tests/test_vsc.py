"""VSC 2022 metrics: the official code's numbers on the shared fixtures, hand-worked cases, CSV errors."""
from __future__ import annotations

import json
import math

import pytest

from s2vs_cli.datasets.vsc import (CopiedSegment, ScoredPair, best_per_pair, pair_micro_ap, read_pairs,
                                     read_segments, segment_micro_ap, union_length)
from s2vs_cli.errors import ConfigError


def segment(q0, q1, r0, r1, score=1.0, pair=("Q1", "R1")):
    return CopiedSegment(pair[0], pair[1], q0, q1, r0, r1, score)


def test_the_official_numbers_on_the_shared_files(parity_dir):
    folder = parity_dir / "vsc"
    expected = json.loads((folder / "expected.json").read_text())
    truth = read_segments(folder / "ground_truth.csv", ground_truth=True)
    matches = read_segments(folder / "matches.csv")
    candidates = read_pairs(folder / "candidates.csv")
    assert (len(truth), len(matches), len(candidates)) == (
        expected["ground_truth_matches"], expected["predicted_matches"], expected["candidate_pairs"])
    true_pairs = {s.pair for s in truth}
    assert segment_micro_ap(truth, matches) == pytest.approx(expected["matching_segment_ap"], abs=1e-6)
    assert pair_micro_ap(true_pairs, best_per_pair(matches)) == pytest.approx(
        expected["matching_pairwise_micro_ap"], abs=1e-6)
    assert pair_micro_ap(true_pairs, candidates) == pytest.approx(expected["descriptor_micro_ap"], abs=1e-6)


def test_pair_micro_ap_by_hand():
    predictions = [ScoredPair("Qa", "R1", 0.9), ScoredPair("Qx", "R1", 0.8), ScoredPair("Qb", "R1", 0.7)]
    assert pair_micro_ap({("Qa", "R1"), ("Qb", "R1")}, predictions) == pytest.approx((1 + 2 / 3) / 2)
    # A true pair never predicted counts against the score.
    assert pair_micro_ap({("Qa", "R1"), ("Qb", "R1"), ("Qc", "R1")}, predictions) == pytest.approx((1 + 2 / 3) / 3)
    with pytest.raises(ValueError, match=r"\(Qa, R1\) is predicted twice"):
        pair_micro_ap({("Qa", "R1")}, predictions + [ScoredPair("Qa", "R1", 0.1)])


def test_segment_micro_ap_by_hand():
    truth = [segment(0, 10, 0, 10)]
    assert segment_micro_ap(truth, [segment(0, 10, 0, 10)]) == pytest.approx(1.0)
    assert segment_micro_ap(truth, [segment(0, 5, 0, 5)]) == pytest.approx(0.5)
    assert segment_micro_ap(truth, [segment(0, 5, 0, 5, 0.9), segment(5, 10, 5, 10, 0.8)]) == pytest.approx(1.0)
    # A prediction that misses the true segment in the (query, reference) plane covers nothing, and its
    # reference time lowers the precision of what comes after: sqrt(1 * 10/20).
    wrong_place = segment(0, 10, 20, 30, 0.9)
    assert segment_micro_ap(truth, [wrong_place, segment(0, 10, 0, 10, 0.8)]) == pytest.approx(math.sqrt(0.5))
    # Equal scores are one level: the order within it does not matter.
    tied = [segment(0, 10, 20, 30, 0.8), segment(0, 10, 0, 10, 0.8)]
    assert segment_micro_ap(truth, tied) == segment_micro_ap(truth, tied[::-1]) == pytest.approx(math.sqrt(0.5))
    # Predictions for a pair without copies only add predicted time.
    other_pair = segment(0, 10, 0, 10, 0.95, pair=("Q2", "R2"))
    assert segment_micro_ap(truth, [other_pair, segment(0, 10, 0, 10, 0.5)]) == pytest.approx(0.5)


def test_union_length():
    assert union_length([]) == 0.0
    assert union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)


def test_ground_truth_needs_no_score_and_ignores_one(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R1,0,1.5,2,3.5\n")
    assert read_segments(path, ground_truth=True) == [CopiedSegment("Q1", "R1", 0.0, 1.5, 2.0, 3.5, 1.0)]
    path.write_text("query_id,ref_id,score,query_start,query_end,ref_start,ref_end\nQ1,R1,0.3,0,1,0,1\n")
    assert read_segments(path, ground_truth=True)[0].score == 1.0


@pytest.mark.parametrize("text,message", [
    ("query_id,ref_id,query_start,query_end,ref_start\nQ1,R1,0,1,0\n", "row 1: missing columns ref_end, score"),
    ("query_id,ref_id,score,query_start,query_end,ref_start,ref_end\nQ1,R1,1,5,2,0,1\n",
     "row 2: query_end 2 is before query_start 5"),
    ("query_id,ref_id,score,query_start,query_end,ref_start,ref_end\nQ1,R1,1,0,1,0,1\nQ2,R1,x,0,1,0,1\n",
     "row 3: score is not a number: 'x'"),
    ("query_id,ref_id,score,query_start,query_end,ref_start,ref_end\n,R1,1,0,1,0,1\n", "row 2: empty query_id"),
    ("query_id,ref_id,score,query_start,query_end,ref_start,ref_end\nQ1,R1,1,0,nan,0,1\n",
     "row 2: query_end is not a finite number"),
])
def test_malformed_csv_is_one_line_naming_file_and_row(tmp_path, text, message):
    path = tmp_path / "matches.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        read_segments(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_missing_csv(tmp_path):
    with pytest.raises(ConfigError, match="candidates.csv: file not found"):
        read_pairs(tmp_path / "candidates.csv")
