"""Custom ground truth files (`--dataset custom --ground-truth gt.json`): layout and every validation error."""
from __future__ import annotations

import json

import pytest

from s2vs_cli.datasets import AnnotationError, EvaluationError, evaluate_custom, load_custom_ground_truth

VALID = {
    "queries": ["q1", "q2"],
    "database": ["a", "b", "c"],
    "positives": {"q1": ["a", "b"], "q2": []},
    "negatives": {"q1": ["c"]},
    "segments": {"q1": {"a": [[0, 10, 25, 35.5]]}},
}


def _write(tmp_path, data) -> str:
    path = tmp_path / "gt.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_a_valid_file_loads(tmp_path):
    gt = load_custom_ground_truth(_write(tmp_path, VALID))
    assert (gt.name, gt.queries, gt.database) == ("custom", ["q1", "q2"], ["a", "b", "c"])
    assert gt.positives == {"q1": frozenset({"a", "b"}), "q2": frozenset()}
    assert gt.negatives == {"q1": frozenset({"c"})}
    assert gt.segments == {("q1", "a"): [(0.0, 10.0, 25.0, 35.5)]}
    assert gt.video_ids() == ["q1", "q2", "a", "b", "c"]


def test_optional_parts_may_be_left_out(tmp_path):
    gt = load_custom_ground_truth(_write(tmp_path, {k: VALID[k] for k in ("queries", "database", "positives")}))
    assert gt.negatives is None and gt.segments == {}


ERRORS = pytest.mark.parametrize("change, message", [
    ({"extra": 1}, "unknown key 'extra'"),
    ({"queries": []}, "'queries' must be a non-empty list"),
    ({"database": ["a", "a"]}, r"database\[1\]: 'a' is listed twice"),
    ({"database": ["a", 7]}, r"database\[1\]: 7 is not a video id"),
    ({"positives": ["a"]}, "'positives' must map each query"),
    ({"positives": {"qx": ["a"]}}, r"positives\['qx'\]: 'qx' is not one of the queries"),
    ({"positives": {"q1": ["a", "zz"]}}, r"positives\['q1'\]\[1\]: 'zz' is in neither the queries nor the database"),
    ({"negatives": {"q1": ["a"]}}, r"negatives\['q1'\]: 'a' is also a positive"),
    ({"segments": {"q1": {"c": [[0, 1, 0, 1]]}}}, r"segments\['q1'\]\['c'\]: 'c' is not a positive of 'q1'"),
    ({"segments": {"q1": {"a": [[5, 1, 0, 1]]}}}, r"segments\['q1'\]\['a'\]\[0\]: \[5, 1, 0, 1\] is not"),
    ({"segments": {"q1": {"a": [[0, 1, 0]]}}}, r"segments\['q1'\]\['a'\]\[0\]"),
])


@ERRORS
def test_errors_name_the_offending_entry(tmp_path, change, message):
    with pytest.raises(AnnotationError, match=message) as e:
        load_custom_ground_truth(_write(tmp_path, VALID | change))
    assert str(e.value).startswith(f"{tmp_path / 'gt.json'}: ")


@ERRORS
def test_the_metrics_check_a_ground_truth_in_memory_the_same_way(tmp_path, change, message):
    similarities = {"q1": {"a": 0.9, "b": 0.5, "c": 0.1}}
    with pytest.raises(EvaluationError, match=message) as e:
        evaluate_custom(VALID | change, similarities)
    assert str(e.value).startswith("ground truth: ")
    from_file = load_custom_ground_truth(_write(tmp_path, VALID))
    assert evaluate_custom(VALID, similarities).metrics == evaluate_custom(from_file, similarities).metrics


def test_file_level_errors(tmp_path):
    with pytest.raises(AnnotationError, match="annotation file not found"):
        load_custom_ground_truth(tmp_path / "none.json")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        load_custom_ground_truth(_write(tmp_path, "{queries: "))
    with pytest.raises(AnnotationError, match="expected a JSON object"):
        load_custom_ground_truth(_write(tmp_path, "[1, 2]"))
    with pytest.raises(AnnotationError, match="missing 'positives'"):
        load_custom_ground_truth(_write(tmp_path, {"queries": ["q"], "database": ["a"]}))
