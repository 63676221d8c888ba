"""The review document of `s2vs evaluate --dataset VSC22 --report`: the two tracks' metrics, then per query (one
with predictions or copies) its pairs, the errors first, as datasets/vsc22_review.py chooses and orders them.

Each pair's copied parts are its predicted segments; its heatmap is there when the evaluation had the features;
the ground truth's segments are named in the query's note.
"""
from __future__ import annotations

from pathlib import Path

from ..datasets.vsc import CopiedSegment
from ..datasets.vsc22_review import (MISSED_FLAG, PAIRS_SHOWN, QueryPairs, ShownPair, VSCEvaluationResult, VSCReview,
                                       review_queries)
from ..progress import SILENT, Progress
from .compare_review import FEATURES_ONLY_NOTE, VideoDurations
from .document import finish_document, metric_entry, new_document, pair_entry, query_entry
from .thumbnails import ThumbnailBatch

TRUTH_SHOWN = 10       # ground-truth segments named in a query's note
ORDER_NOTE = ("VSC 2022 ranks every prediction together (pair_uAP, matching_uAP): no per-query AP. Per query with "
              "predictions or copies: its predicted pairs that are not copies (negative ranked high, the highest "
              "score first), the ground truth's copies it did not predict (copy missed), then its correct pairs; "
              f"at most {PAIRS_SHOWN} a query, the errors kept first. A pair's copied parts are its predicted "
              "segments (score: the segment's)")
NO_HEATMAP_NOTE = ("no heatmaps: the predictions were read from {name}; evaluate the features (--dataset-hdf5 or "
                   "--dataset-path) to see each pair's frame-to-frame map")
NO_SEGMENTS_NOTE = "no copied parts: {name} holds scored pairs, not segments"


def vsc_document(report: VSCEvaluationResult, videos: dict[str, Path] | None = None, *,
                 extractor: str | None = None, shown: int = PAIRS_SHOWN, progress: Progress = SILENT) -> dict:
    """The review document of a VSC22 evaluation run with a review (`report.review`), at most `shown` pairs a
    query; `videos` maps ids to their files (none: not at hand)."""
    review = report.review
    if review is None:
        raise ValueError("the evaluation kept no predictions to review (run it with review=True)")
    builder = _VSCReview(review, videos or {})
    queries = [builder.query(query) for query in review_queries(review, shown)]
    metrics = [metric_entry(name, value) for name, value in report.evaluation.metrics.items()]
    document = new_document("evaluate", report.dataset, model=report.model, extractor=extractor,
                            random_weights=report.random_weights, notes=_notes(report, builder, videos or {}),
                            metrics=metrics, queries=queries)
    return finish_document(document, builder.thumbnails, progress)


def review_ids(report: VSCEvaluationResult) -> list[str]:
    """The videos the review shows: each query's and its shown pairs' references."""
    if report.review is None:
        return []
    shown = review_queries(report.review)
    return list(dict.fromkeys([*(q.query_id for q in shown), *(p.ref_id for q in shown for p in q.pairs)]))


class _VSCReview:
    """Builds each query's entry from the review's predictions, asking for thumbnails where videos are at hand."""

    def __init__(self, review: VSCReview, videos: dict[str, Path]):
        self.review = review
        self.videos = videos
        self.thumbnails = ThumbnailBatch()
        self.segments: dict[tuple[str, str], list[CopiedSegment]] = {}
        for segment in review.segments or ():
            self.segments.setdefault(segment.pair, []).append(segment)
        self.truth: dict[str, list[CopiedSegment]] = {}
        for segment in review.truth:
            self.truth.setdefault(segment.query_id, []).append(segment)
        self.sampled = {q: pair.query_duration for (q, _), pair in review.located.items()}  # from the frame times
        self.lowest_used = False  # a copy missed shown at the lowest predicted score
        self._duration = VideoDurations()  # each file probed once

    def query(self, shown: QueryPairs) -> dict:
        """The QUERY entry: its shown pairs and a note counting them and naming the ground truth's segments."""
        video = self.videos.get(shown.query_id)
        hits = [self._pair(shown.query_id, video, pair) for pair in shown.pairs]
        return query_entry(shown.query_id, video=video, hits=hits, hits_note=self._note(shown),
                           duration=self._duration(video) or self.sampled.get(shown.query_id))

    def _pair(self, query: str, query_video: Path | None, pair: ShownPair) -> dict:
        located = self.review.located.get((query, pair.ref_id))
        video = self.videos.get(pair.ref_id)
        if pair.flag == MISSED_FLAG and (query, pair.ref_id) not in self.review.true_scores:
            self.lowest_used = True
        # A copy missed has no predicted segment: whatever its map shows was not predicted.
        segments = [] if pair.flag == MISSED_FLAG else sorted(self.segments.get((query, pair.ref_id), ()),
                                                                key=lambda s: -s.score)
        matches = [{"query_start": s.query_start, "query_end": s.query_end, "target_start": s.ref_start,
                    "target_end": s.ref_end, "score": s.score} for s in segments]
        sampled = located.target_duration if located is not None else None
        return pair_entry(pair.ref_id, pair.score, matches, target_video=video, query_video=query_video,
                          target_duration=self._duration(video) or sampled, thumbnails=self.thumbnails,
                          heatmap=located.heatmap if located is not None else None, rank=pair.rank,
                          label=pair.label, flag=pair.flag)

    def _note(self, shown: QueryPairs) -> str:
        """'3 predicted pairs (1 positive, 2 negatives), 1 copy missed; ground truth: R1 q 0:04.0–0:10.0 ↔ …'."""
        parts = [f"{_count(shown.predicted, 'predicted pair')} ({_count(shown.positives, 'positive')}, "
                 f"{_count(shown.negatives, 'negative')}), {_count(shown.missed, 'copy missed', 'copies missed')}"]
        total = shown.predicted + shown.missed
        if len(shown.pairs) < total:
            parts.append(f"{len(shown.pairs)} of {total} shown, the errors first")
        truth = sorted(self.truth.get(shown.query_id, ()), key=lambda s: (s.ref_id, s.query_start, s.ref_start))
        if truth:
            named = ", ".join(f"{s.ref_id} q {_clock(s.query_start)}–{_clock(s.query_end)} ↔ r "
                              f"{_clock(s.ref_start)}–{_clock(s.ref_end)}" for s in truth[:TRUTH_SHOWN])
            more = f" and {len(truth) - TRUTH_SHOWN} more" if len(truth) > TRUTH_SHOWN else ""
            parts.append(f"ground truth: {named}{more}")
        return "; ".join(parts)



def _notes(report: VSCEvaluationResult, builder: _VSCReview, videos: dict[str, Path]) -> list[str]:
    """What a reader must know: how the pairs are chosen, what is missing and why."""
    review = report.review
    notes = [ORDER_NOTE]
    if review.source is not None:
        name = Path(review.source).name
        notes.append(NO_HEATMAP_NOTE.format(name=name))
        if review.segments is None:
            notes.append(NO_SEGMENTS_NOTE.format(name=name))
    else:
        if report.model == "features only":
            notes.append(FEATURES_ONLY_NOTE)
        if not videos:
            notes.append("videos not linked: they are at hand when the evaluation extracts them (--dataset-path)")
    if builder.lowest_used:
        lowest = min((pair.score for pair in review.pairs), default=0.0)
        notes.append(f"a copy missed without a score of its own is shown at the lowest predicted score "
                     f"({lowest:.4f})")
    evaluation = report.evaluation
    missing_q, missing_r = evaluation.missing_queries, evaluation.missing_database
    if missing_q or missing_r:
        example = (missing_q or missing_r)[0]
        notes.append(f"missing: {_count(len(missing_q), 'query', 'queries')} and {_count(len(missing_r), 'reference')} "
                     f"had no similarities (e.g. {example}); their copies still count, as in the official evaluation")
    if report.segment_note:
        notes.append(report.segment_note)
    if report.normalization is not None:
        notes.append(f"scores normalized with {report.normalization.noise} (k {report.normalization.k}, "
                     f"β {report.normalization.beta:g})")
    return notes


def _count(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"
