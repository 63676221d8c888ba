"""Tests of the benchmark metrics: building blocks by hand, each benchmark on small hand-worked cases, and parity
with the numbers the original implementation printed (../shared/parity/metrics) on the real annotation files."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SHARED

from s2vs_cli.datasets import CCWebBenchmark, EVVEBenchmark, FIVRBenchmark, VCDBBenchmark, load_benchmark
from s2vs_cli.datasets import (
    EvaluationError,
    average_precision,
    average_precision_from_ranks,
    evaluate,
    evaluate_cc_web,
    evaluate_custom,
    evaluate_evve,
    evaluate_fivr,
    evaluate_vcdb,
    micro_average_precision,
    ranking,
    recall_at_k,
    trapezoid_average_precision,
)

DATA = SHARED / "data"
METRICS = SHARED / "parity" / "metrics"
TOL = 1e-6

# metric_expected.json section -> (npz key, annotation file)
PARITY = {
    "FIVR-5K": ("fivr5k", "fivr_audio.pickle"),
    "EVVE": ("evve", "evve.pickle"),
    "CC_WEB_VIDEO": ("cc_web", "cc_web_video.pickle"),
    "VCDB": ("vcdb", "vcdb.pickle"),
}


def approx(value) -> pytest.approx:
    return pytest.approx(float(value), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Building blocks


def test_ranking_is_descending_with_ties_in_input_order():
    assert ranking([0.5, 0.9, 0.5, 0.9, 0.1]).tolist() == [1, 3, 0, 2, 4]
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 5, size=int(rng.integers(1, 40))).astype(float)  # many ties
        assert ranking(scores).tolist() == np.argsort(-scores, kind="stable").tolist()


def test_ranking_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        ranking([0.1, float("nan")])


def test_average_precision_by_hand():
    # Hits at ranks 1 and 3: precisions 1/1 and 2/3.
    assert average_precision([1, 0, 1, 0, 0]) == approx(Fraction(1, 2) * (1 + Fraction(2, 3)))
    # A third relevant item is never retrieved: it still counts in the denominator.
    assert average_precision([1, 0, 1, 0, 0], n_relevant=3) == approx(Fraction(1, 3) * (1 + Fraction(2, 3)))
    assert average_precision([True, True]) == 1.0
    assert average_precision_from_ranks([0, 2], 3) == approx(Fraction(5, 9))


def test_average_precision_without_relevant_items_is_zero():
    # Defined as 0.0 (the original divides 0 by 0); FIVR leaves such queries out of its mean, VCDB does not.
    assert average_precision([0, 0, 0]) == 0.0
    assert average_precision([]) == 0.0
    with pytest.raises(ValueError, match="n_relevant"):
        average_precision([1, 1], n_relevant=1)


def test_ties_follow_the_input_order():
    # 0.8 and 0.8 tie: the first listed is ranked first, whichever it is.
    assert micro_average_precision([0.8, 0.8, 0.5], [0, 1, 1]) == approx((Fraction(1, 2) + Fraction(2, 3)) / 2)
    assert micro_average_precision([0.8, 0.8, 0.5], [1, 0, 1]) == approx((1 + Fraction(2, 3)) / 2)


def test_micro_average_precision_pools_pairs():
    # q1: a 0.9 (relevant), b 0.4; q2: a 0.7, b 0.6 (relevant).
    # Pooled: 0.9 R, 0.7, 0.6 R, 0.4 -> uAP = (1/1 + 2/3) / 2, while mAP = (1 + 1/2) / 2.
    assert micro_average_precision([0.9, 0.4, 0.7, 0.6], [1, 0, 0, 1]) == approx(Fraction(5, 6))
    with pytest.raises(ValueError, match="relevance"):
        micro_average_precision([0.9, 0.4], [1])


def test_trapezoid_average_precision_by_hand():
    # Positives at 0-based ranks 0, 2, 5 of 4 in all:
    #   k=0, r=0: 1 (r = 0)  + 1/1 = 2
    #   k=1, r=2: 1/2        + 2/3 = 7/6
    #   k=2, r=5: 2/5        + 3/6 = 9/10
    #   sum = 61/15, AP = 61/15 / (2 * 4) = 61/120
    assert trapezoid_average_precision([0, 2, 5], 4) == approx(Fraction(61, 120))
    # One positive, retrieved second: (0/1 + 1/2) / 2.
    assert trapezoid_average_precision([1], 1) == approx(Fraction(1, 4))
    assert trapezoid_average_precision([0, 1, 2], 3) == approx(1)
    assert trapezoid_average_precision([], 3) == 0.0
    assert trapezoid_average_precision([], 0) == 0.0
    with pytest.raises(ValueError):
        trapezoid_average_precision([2, 1], 2)
    with pytest.raises(ValueError):
        trapezoid_average_precision([0, 1], 1)


def test_recall_at_k_by_hand():
    ranked = [0, 1, 0, 1, 1]
    assert recall_at_k(ranked, 1) == 0.0
    assert recall_at_k(ranked, 2) == approx(Fraction(1, 3))
    assert recall_at_k(ranked, 2, n_relevant=4) == approx(Fraction(1, 4))
    assert recall_at_k(ranked, 100, n_relevant=4) == approx(Fraction(3, 4))
    assert recall_at_k([0, 0], 1) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(ranked, 0)


# ---------------------------------------------------------------------------------------------
# Each benchmark on a small hand-worked case


def _fivr_small() -> FIVRBenchmark:
    return FIVRBenchmark(
        name="FIVR-5K", queries=["q1", "q2", "q3"], database=["a", "b", "c", "d", "q1"], source=Path("-"),
        version="5k",
        annotation={
            "q1": {"ND": ["a"], "CS": ["c"], "IS": ["q1", "elsewhere"]},  # itself, and a video of no database
            "q2": {"DS": ["b", "d"]},
            "q3": {"ND": ["a"]},
        },
    )


# q3 has no row; d is no query's target: both missing. q1's own score is ignored.
FIVR_SIMILARITIES = {
    "q1": {"q1": 1.0, "a": 0.9, "b": 0.8, "c": 0.7},
    "q2": {"q1": 0.1, "a": 0.5, "b": 0.6, "c": 0.9},
}


def test_fivr_by_hand():
    result = evaluate_fivr(_fivr_small(), FIVR_SIMILARITIES, hard=False)
    assert (result.queries, result.database) == (2, 4)
    assert (result.missing_queries, result.missing_database) == (("q3",), ("d",))
    m = result.metrics
    assert list(m) == ["DSVR", "CSVR", "ISVR", "DSVD", "CSVD", "ISVD"]
    # DSVR: q1 {a} first of a, b, c -> 1; q2 {b} (d missing) second of c, b, a, q1 -> 1/2.
    assert m["DSVR"] == approx(Fraction(3, 4))
    # CSVR and ISVR: q1 {a, c} at ranks 1, 3 -> (1 + 2/3)/2 (q1 itself is not relevant); q2 -> 1/2.
    assert m["CSVR"] == m["ISVR"] == approx((Fraction(5, 6) + Fraction(1, 2)) / 2)
    # Pooled: (q1,a) .9 R, (q2,c) .9 (tie: earlier query first), (q1,b) .8, (q1,c) .7, (q2,b) .6 R, ...
    assert m["DSVD"] == approx((1 + Fraction(2, 5)) / 2)
    assert m["CSVD"] == m["ISVD"] == approx((1 + Fraction(2, 4) + Fraction(3, 5)) / 3)


def test_fivr_hard_removes_easy_duplicates_from_targets_and_relevant_sets():
    m = evaluate_fivr(_fivr_small(), FIVR_SIMILARITIES, hard=True, easy_duplicates={"a"}).metrics
    assert list(m) == ["DSVR_h", "CSVR_h", "ISVR_h", "DSVD_h", "CSVD_h", "ISVD_h"]
    # q1 has no DS-relevant video left: out of the mean. q2 {b}: second of c, b, q1.
    assert m["DSVR_h"] == approx(Fraction(1, 2))
    assert m["CSVR_h"] == approx(Fraction(1, 2))  # q1 {c} second of b, c; q2 1/2
    # Pooled: (q2,c) .9, (q1,b) .8, (q1,c) .7, (q2,b) .6 R, (q2,q1) .1
    assert m["DSVD_h"] == approx(Fraction(1, 4))
    assert m["CSVD_h"] == approx((Fraction(1, 3) + Fraction(2, 4)) / 2)


def test_fivr_both_variants_and_easy_duplicates_from_the_benchmark(monkeypatch):
    monkeypatch.setattr(FIVRBenchmark, "easy_duplicates", lambda self, *a, **k: frozenset({"a"}))
    both = evaluate_fivr(_fivr_small(), FIVR_SIMILARITIES).metrics
    assert both == {**evaluate_fivr(_fivr_small(), FIVR_SIMILARITIES, hard=False).metrics,
                    **evaluate_fivr(_fivr_small(), FIVR_SIMILARITIES, hard=True, easy_duplicates={"a"}).metrics}


def test_vcdb_keeps_queries_without_positives_in_the_mean():
    bench = VCDBBenchmark(name="VCDB", queries=["x", "y", "z"], database=["x", "y", "z"], source=Path("-"),
                          positives={"x": frozenset("y"), "y": frozenset("z"), "z": frozenset("x")}, distractors=[])
    result = evaluate_vcdb(bench, {"x": {"x": 1.0, "y": 0.9}, "y": {"x": 0.3, "y": 1.0}})
    assert (result.missing_queries, result.missing_database) == (("z",), ("z",))
    # x finds y first (AP 1); y's only positive z is missing, AP 0 still counts (FIVR would give 1.0).
    assert result.metrics == {"VCDB_mAP": approx(0.5), "VCDB_uAP": approx(1.0)}


def test_evve_by_hand():
    bench = EVVEBenchmark(name="EVVE", queries=["q1", "q2", "q3"], database=["a", "b", "c", "d"], source=Path("-"),
                          events={"e1": (frozenset({"q1", "q2"}), frozenset({"a", "b"})),
                                  "e2": (frozenset({"q3"}), frozenset({"c"}))})
    similarities = {
        # all_db ranking: q1 (itself counts), c, a, d, b; "zz" is not a benchmark video.
        "q1": {"q1": 1.0, "zz": 0.99, "c": 0.8, "a": 0.7, "d": 0.6, "b": 0.5},
        "q3": {"c": 0.9, "a": 0.1},
    }
    result = evaluate_evve(bench, similarities)
    assert (result.missing_queries, result.missing_database) == (("q2",), ())
    # q1: positives at ranks 2 and 4: [(0/2 + 1/3) + (1/4 + 2/5)] / (2*2) = 59/240; q3: rank 0 -> 1.
    q1 = Fraction(59, 240)
    assert result.metrics["EVVE_mAP"] == approx((q1 + 1) / 2)
    # Pooled: (q1,q1) 1, (q3,c) .9 R, (q1,c) .8, (q1,a) .7 R, (q1,d) .6, (q1,b) .5 R, (q3,a) .1
    assert result.metrics["EVVE_uAP"] == approx((Fraction(1, 2) + Fraction(2, 4) + Fraction(3, 6)) / 3)
    # e1: q2 neither loaded as query nor as target, so it leaves |event queries ∩ all_db|.
    assert result.per_event == {"e1": approx(q1), "e2": approx(1)}


def _cc_web_small() -> CCWebBenchmark:
    return CCWebBenchmark(
        name="CC_WEB_VIDEO", queries=["q", "r"], database=["a", "b", "c", "d", "e", "q", "r"], source=Path("-"),
        index={"q": 0, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "r": 7},
        # Video 6 is a positive no id maps to: never retrieved, always in the denominator.
        ground_truth=[{0: "E", 1: "S", 2: "X", 3: "M", 6: "V"}, {7: "E"}],
        excluded=[frozenset({3}), frozenset()],
    )


def test_cc_web_by_hand():
    result = evaluate_cc_web(_cc_web_small(), {"q": {"q": 1.0, "d": 0.9, "a": 0.8, "b": 0.7, "c": 0.6, "e": 0.5}})
    # Only query set "q" is present: the sums are divided by 1.
    assert (result.missing_queries, result.missing_database) == (("r",), ("r",))
    # Labelled videos only: q (E) 1, a (S) 2, b (X) 3, c (M) 4; 4 positive labels.
    assert result.metrics["mAP"] == approx((1 + 1 + Fraction(3, 4)) / 4)
    # Every video: q 1, d 2, a 3, b 4, c 5, e 6.
    assert result.metrics["mAP_star"] == approx((1 + Fraction(2, 3) + Fraction(3, 5)) / 4)
    # Clean: c (excluded) is skipped and leaves the denominator: q 1, a 2, b 3 over 3 positives.
    assert result.metrics["mAP_c"] == approx(Fraction(2, 3))
    assert result.metrics["mAP_c_star"] == approx((1 + Fraction(2, 3)) / 3)  # q 1, d 2, a 3, b 4, e 5


CUSTOM = {
    "queries": ["q1", "q2", "q3"],
    "database": ["a", "b", "c", "d"],
    "positives": {"q1": ["a", "c"], "q2": [], "q3": ["b"]},
    "negatives": {"q3": ["d"]},
}
CUSTOM_SIMILARITIES = {
    "q1": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6},
    "q2": {"a": 0.5, "b": 0.4, "c": 0.3, "d": 0.2},
    "q3": {"a": 0.9, "b": 0.5, "c": 0.4, "d": 0.1},
}


def test_custom_by_hand():
    result = evaluate_custom(CUSTOM, CUSTOM_SIMILARITIES, ks=(1, 2, 3))
    m = result.metrics
    # q1: a, c at ranks 1, 3 -> 5/6. q3 ranks only its positives and negatives (b, d): b first -> 1.
    # q2 has no positive: out of mAP and recall, listed in without_positives.
    assert result.without_positives == ("q2",)
    assert m["mAP"] == approx((Fraction(5, 6) + 1) / 2)
    assert (m["recall@1"], m["recall@2"], m["recall@3"]) == (approx(0.75), approx(0.75), approx(1.0))
    # Pooled: (q1,a) .9 R, (q1,b) .8, (q1,c) .7 R, (q1,d) .6, (q2,a) .5, (q3,b) .5 R (tie: q2 first), ...
    assert m["uAP"] == approx((1 + Fraction(2, 3) + Fraction(3, 6)) / 3)
    # Without negatives q3 ranks a above b.
    unjudged = evaluate_custom({k: v for k, v in CUSTOM.items() if k != "negatives"}, CUSTOM_SIMILARITIES)
    assert unjudged.metrics["mAP"] == approx((Fraction(5, 6) + Fraction(1, 2)) / 2)
    assert list(unjudged.metrics) == ["mAP", "uAP", "recall@1", "recall@5", "recall@10"]


def test_custom_accepts_a_loaded_ground_truth_and_evaluate_dispatches():
    loaded = SimpleNamespace(name="custom", queries=CUSTOM["queries"], database=CUSTOM["database"],
                             positives={q: frozenset(v) for q, v in CUSTOM["positives"].items()},
                             negatives={"q3": frozenset({"d"})}, segments={})
    assert evaluate(loaded, CUSTOM_SIMILARITIES).metrics == evaluate_custom(CUSTOM, CUSTOM_SIMILARITIES).metrics
    assert evaluate(_fivr_small(), FIVR_SIMILARITIES, hard=False).metrics["DSVR"] == approx(0.75)


def test_a_target_missing_from_one_row_stays_relevant_to_it():
    # b loaded (q2 scored it) but q1 has no score for it: q1 cannot retrieve it, and is not let off.
    similarities = {"q1": {"a": 0.9, "c": 0.1}, "q2": {"b": 0.5}}
    gt = {"queries": ["q1", "q2"], "database": ["a", "b", "c"], "positives": {"q1": ["a", "b"], "q2": ["b"]}}
    result = evaluate_custom(gt, similarities)
    assert result.missing_database == ()
    assert result.metrics["mAP"] == approx((Fraction(1, 2) + 1) / 2)


@pytest.mark.parametrize("n_positives", [1, 150])  # few relevant pairs: binary searches; many: one sort
def test_benchmark_metrics_match_the_definitions_on_tied_scores(n_positives):
    rng = np.random.default_rng(n_positives)
    queries, database = [f"q{i}" for i in range(5)], [f"v{j:03d}" for j in range(400)]
    scores = rng.integers(0, 20, size=(5, 400)).astype(float)  # ties everywhere
    positives = {q: rng.choice(database, n_positives, replace=False).tolist() for q in queries}
    gt = {"queries": queries, "database": database, "positives": positives}
    result = evaluate_custom(gt, {q: dict(zip(database, row)) for q, row in zip(queries, scores)})
    relevance = np.array([[v in positives[q] for v in database] for q in queries])
    # Pairs listed query by query in database order: ties go to the earlier query, then the earlier video.
    assert result.metrics["uAP"] == approx(micro_average_precision(scores.ravel(), relevance.ravel()))
    aps = [average_precision(relevance[i][ranking(scores[i])]) for i in range(5)]
    assert result.metrics["mAP"] == approx(np.mean(aps))


def test_unusable_similarities_are_refused():
    with pytest.raises(EvaluationError, match=r"none of the 3 ground truth queries is in the similarities "
                                              r"\(looked for 'q1', 'q2', 'q3'\)"):
        evaluate_custom(CUSTOM, {"other": {"a": 1.0}})
    one = {"queries": ["qx"], "database": ["a"], "positives": {"qx": ["a"]}}
    with pytest.raises(EvaluationError, match="^the ground truth query 'qx' is not in features.h5$"):
        evaluate_custom(one, {"q1": {"a": 1.0}}, scored_from="features.h5")
    with pytest.raises(EvaluationError, match="'q1' to 'b' is NaN"):
        evaluate_custom(CUSTOM, {"q1": {"a": 0.5, "b": float("nan")}})
    with pytest.raises(EvaluationError, match="must map"):
        evaluate_custom(CUSTOM, {"q1": [0.5, 0.1]})
    with pytest.raises(EvaluationError, match="positives"):
        evaluate_custom({"queries": ["q1"], "database": ["a"]}, {"q1": {"a": 1.0}})


def test_as_dict_reports_counts_and_missing_ids():
    summary = evaluate_fivr(_fivr_small(), FIVR_SIMILARITIES, hard=False).as_dict()
    assert summary["missing_queries"] == ["q3"] and summary["missing_database"] == ["d"]
    assert (summary["queries"], summary["database"], summary["benchmark"]) == (2, 4, "FIVR-5K")
    json.dumps(summary)


# ---------------------------------------------------------------------------------------------
# The real annotation files: parity with the original, perfect and known rankings


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the ../shared folder (annotation files, metric fixtures) is not beside "
                    "the checkout")
    return path


@pytest.fixture(scope="module")
def bench():
    """Benchmark name -> loaded from ../shared/data (once per module)."""
    _require(DATA)
    cache: dict[str, object] = {}

    def load(name: str):
        if name not in cache:
            cache[name] = load_benchmark(name, annotations=DATA / PARITY[name][1])
        return cache[name]
    return load


@pytest.fixture(scope="module")
def easy_duplicates(bench) -> frozenset[str]:
    return bench("FIVR-5K").easy_duplicates(DATA / "fivr_easy_duplicates.txt")


@pytest.fixture(scope="module")
def metric_fixture():
    """(npz arrays, expected numbers) of ../shared/parity/metrics."""
    _require(METRICS)
    arrays = dict(np.load(METRICS / "metric_similarities.npz"))
    return arrays, json.loads((METRICS / "metric_expected.json").read_text())


@pytest.mark.parametrize("name", list(PARITY))
def test_parity_with_the_original(name, bench, metric_fixture, easy_duplicates):
    arrays, expected = metric_fixture
    key = PARITY[name][0]
    database = arrays[f"{key}_database"].tolist()
    similarities = {q: dict(zip(database, row.tolist()))
                    for q, row in zip(arrays[f"{key}_queries"].tolist(), arrays[f"{key}_scores"])}
    options = {"easy_duplicates": easy_duplicates} if name == "FIVR-5K" else {}
    result = evaluate(bench(name), similarities, **options)
    assert set(expected[name]) <= set(result.metrics)
    for metric, value in expected[name].items():
        # Deviations (≤ ~1e-8) come from tied float32 scores, which the original orders arbitrarily.
        assert result.metrics[metric] == pytest.approx(value, abs=TOL), metric
    if name == "EVVE":  # every 6th query present
        assert len(result.missing_queries) == len(bench(name).queries) - result.queries > 0


def _ranked(benchmark, queries, first: dict[str, list[str]], columns=None) -> dict[str, dict[str, float]]:
    """Similarities ranking `first[q]` (in that order) above every other column, which all score 0."""
    columns = benchmark.database if columns is None else columns
    rows = {}
    for q in queries:
        row = dict.fromkeys(columns, 0.0)
        for place, video in enumerate(first[q]):
            row[video] = 2.0 - place / (len(first[q]) + 1)
        rows[q] = row
    return rows


def _fivr_grades(benchmark, query) -> dict[str, int]:
    """Video -> 3 (ND/DS), 2 (CS), 1 (IS): the order that is perfect for every FIVR task at once."""
    grades: dict[str, int] = {}
    for grade, labels in ((1, ("IS",)), (2, ("CS",)), (3, ("ND", "DS"))):
        for label in labels:
            for video in benchmark.annotation.get(query, {}).get(label, ()):
                grades[video] = grade
    return grades


def test_fivr_perfect_ranking_scores_one(bench, easy_duplicates):
    fivr = bench("FIVR-5K")
    similarities = {}
    for q in fivr.queries:
        grades = _fivr_grades(fivr, q)
        similarities[q] = {v: float(grades.get(v, 0)) for v in fivr.database}
    metrics = evaluate_fivr(fivr, similarities, easy_duplicates=easy_duplicates).metrics
    assert len(metrics) == 12 and all(value == approx(1.0) for value in metrics.values()), metrics


def _alternating(benchmark, queries, relevant: dict[str, list[str]], negatives: dict[str, list[str]]):
    """Pooled ranking negative, relevant, negative, relevant, ... (one query after another, each alternating
    within itself too); every other pair scores below. AP and uAP are then exactly 1/2."""
    similarities = {q: dict.fromkeys(benchmark.database, -1.0) for q in queries}
    place = 0
    for q in queries:
        for neg, pos in zip(negatives[q], relevant[q]):
            similarities[q][neg] = 1.0 - place * 1e-6
            similarities[q][pos] = 1.0 - (place + 1) * 1e-6
            place += 2
    return similarities


def test_fivr_known_ranking_on_a_subset(bench, easy_duplicates):
    fivr = bench("FIVR-5K")
    database = set(fivr.database)
    queries = fivr.queries[:5]  # the other 45 are missing
    relevant = {q: sorted(v for v, g in _fivr_grades(fivr, q).items() if v in database and v != q) for q in queries}
    negatives = {q: [v for v in fivr.database if v not in relevant[q] and v != q][:len(relevant[q])]
                 for q in queries}
    result = evaluate_fivr(fivr, _alternating(fivr, queries, relevant, negatives), hard=False)
    assert result.queries == 5 and len(result.missing_queries) == 45
    assert result.metrics["ISVR"] == approx(0.5) and result.metrics["ISVD"] == approx(0.5)


def test_vcdb_perfect_and_known_rankings(bench):
    vcdb = bench("VCDB")
    perfect = _ranked(vcdb, vcdb.queries, {q: sorted(vcdb.positives[q]) for q in vcdb.queries})
    assert evaluate_vcdb(vcdb, perfect).metrics == {"VCDB_mAP": approx(1), "VCDB_uAP": approx(1)}
    queries = vcdb.queries[:20]
    relevant = {q: sorted(vcdb.positives[q]) for q in queries}
    negatives = {q: [v for v in vcdb.database if v not in vcdb.positives[q] and v != q][:len(relevant[q])]
                 for q in queries}
    result = evaluate_vcdb(vcdb, _alternating(vcdb, queries, relevant, negatives))
    assert result.missing_database == () and len(result.missing_queries) == len(vcdb.queries) - 20
    assert result.metrics == {"VCDB_mAP": approx(0.5), "VCDB_uAP": approx(0.5)}


def test_evve_perfect_and_known_rankings(bench):
    evve = bench("EVVE")
    event_of = {q: e for e, (qs, _) in evve.events.items() for q in qs}
    positives = {q: sorted(evve.events[event_of[q]][1]) for q in evve.queries}
    perfect = _ranked(evve, evve.queries, positives)
    result = evaluate_evve(evve, perfect)
    assert result.metrics == {"EVVE_mAP": approx(1), "EVVE_uAP": approx(1)}
    assert all(value == approx(1) for value in result.per_event.values()) and len(result.per_event) == len(evve.events)
    # Alternating, the k-th positive (k = 0, 1, ...) of a query lands at rank 2k + 1:
    # trapezoid AP = Σ_k [k / (2k + 1) + (k + 1) / (2k + 2)] / (2n).
    queries = evve.queries[::50]
    negatives = {q: [v for v in evve.database if v not in positives[q]][:len(positives[q])] for q in queries}
    result = evaluate_evve(evve, _alternating(evve, queries, positives, negatives))
    expected = [sum(Fraction(k, 2 * k + 1) + Fraction(1, 2) for k in range(len(positives[q]))) / (2 * len(positives[q]))
                for q in queries]
    assert result.metrics["EVVE_mAP"] == approx(sum(expected) / len(expected))
    assert result.metrics["EVVE_uAP"] == approx(0.5)


def test_cc_web_perfect_ranking_misses_only_the_unindexed_positive(bench):
    cc = bench("CC_WEB_VIDEO")
    by_number = {n: v for v, n in cc.index.items()}
    positives = [[by_number[n] for n, label in gt.items() if label in "ESLMV" and n in by_number]
                 for gt in cc.ground_truth]
    perfect = _ranked(cc, cc.queries, dict(zip(cc.queries, positives)))
    # Query set 4/4_3_Y has 162 positive labels, one of them for a video number no id maps to: its AP is
    # 161/162 in all four variants (no positive of it is excluded), every other set scores 1.
    unreachable = [sum(n not in by_number for n, label in gt.items() if label in "ESLMV") for gt in cc.ground_truth]
    assert unreachable == [0, 0, 0, 1] + [0] * 20 and len(positives[3]) == 161
    expected = (23 + Fraction(161, 162)) / 24
    assert evaluate_cc_web(cc, perfect).metrics == {name: approx(expected)
                                                    for name in ("mAP", "mAP_star", "mAP_c", "mAP_c_star")}


def test_cc_web_known_ranking_on_one_query_set(bench):
    cc = bench("CC_WEB_VIDEO")
    by_number = {n: v for v, n in cc.index.items()}
    gt, excluded = cc.ground_truth[0], cc.excluded[0]
    query = cc.queries[0]
    positives = [by_number[n] for n, label in gt.items() if label in "ESLMV"]
    # Labelled negatives (X) that are not excluded: the alternation holds in all four variants.
    negatives = [by_number[n] for n, label in gt.items() if label == "X" and n not in excluded][:len(positives)]
    assert len(negatives) == len(positives) and not excluded & {cc.index[v] for v in positives}
    result = evaluate_cc_web(cc, _alternating(cc, [query], {query: positives}, {query: negatives}))
    assert result.queries == 1 and len(result.missing_queries) == 23
    assert result.metrics == {name: approx(0.5) for name in ("mAP", "mAP_star", "mAP_c", "mAP_c_star")}


# --- segments -----------------------------------------------------------------------------------


def test_interval_helpers():
    from s2vs_cli.datasets import covered_time, interval_union, overlap_time

    assert interval_union([(5, 6), (0, 2), (1, 3), (3, 4)]) == [(0, 4), (5, 6)]
    assert covered_time([(0, 2), (1, 3), (10, 11)]) == 4
    assert overlap_time([(0, 4), (6, 8)], [(3, 7)]) == 2
    assert overlap_time([], [(0, 1)]) == 0


def test_segment_precision_recall_hand_worked():
    from s2vs_cli.datasets import segment_precision_recall

    annotated = {("q", "a"): [(0.0, 10.0, 20.0, 30.0)], ("q", "b"): [(0.0, 4.0, 0.0, 4.0)]}
    # Pair a: query axis reports [5, 15): 5 s overlap of 10 reported; target axis [20, 30): exact.
    # Pair b: nothing reported. Pair c (not annotated): 2 s reported on each axis, all wrong.
    predicted = {("q", "a"): [(5.0, 15.0, 20.0, 30.0)], ("q", "c"): [(0.0, 2.0, 0.0, 2.0)]}
    got = segment_precision_recall(predicted, annotated)
    precision_q, precision_t = 5 / 12, 10 / 12
    recall_q, recall_t = 5 / 14, 10 / 14
    assert got["segment_precision"] == pytest.approx(np.sqrt(precision_q * precision_t))
    assert got["segment_recall"] == pytest.approx(np.sqrt(recall_q * recall_t))
    p, r = got["segment_precision"], got["segment_recall"]
    assert got["segment_F1"] == pytest.approx(2 * p * r / (p + r))


def test_segment_precision_recall_perfect_and_empty():
    from s2vs_cli.datasets import segment_precision_recall

    annotated = {("q", "a"): [(0.0, 2.0, 5.0, 7.0), (10.0, 12.0, 15.0, 17.0)]}
    assert segment_precision_recall(annotated, annotated) == {
        "segment_precision": 1.0, "segment_recall": 1.0, "segment_F1": 1.0}
    assert segment_precision_recall({}, annotated) == {
        "segment_precision": 0.0, "segment_recall": 0.0, "segment_F1": 0.0}
