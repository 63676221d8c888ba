"""The review document of one `s2vs evaluate --report`: the metrics beside the paper's, and per query its AP and
first its ranking errors (positives ranked low, negatives ranked high), each a pair to open.

With features at hand the evaluation located the error pairs (EvaluationResult.located): each has its heatmap
and copied parts; from saved similarities there are none (a note says so). Videos are linked when the
benchmark's videos were given (--dataset-path, found as the extraction found them). `review_document` is the one
entry: a VSC22 report, which has no per-query AP, gets its own review (vsc_review.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..datasets.evaluation_result import EvaluationResult
from ..datasets.per_query import ERRORS_SHOWN
from ..datasets.vsc22_review import VSCEvaluationResult
from ..progress import SILENT, Progress
from . import vsc_review
from .compare_review import FEATURES_ONLY_NOTE, VideoDurations
from .document import finish_document, metric_entry, new_document, pair_entry, query_entry
from .saved_results import ERROR_FLAGS, errors_note
from .thumbnails import ThumbnailBatch
from .video_lookup import benchmark_videos

if TYPE_CHECKING:
    from ..config import EvaluateConfig

NO_HEATMAP_NOTE = ("no heatmaps or copied parts: the similarities were read from {name}; evaluate the features "
                   "(--dataset-hdf5 or --dataset-path) to see where the pairs match")
SHOWN_IDS = 5  # ids named in a note before "and N more"


def review_document(report: EvaluationResult, cfg: EvaluateConfig, *, extractor: str | None = None,
                    progress: Progress = SILENT) -> dict:
    """The review document of any finished evaluation, its videos linked when --dataset-path gave them: VSC22's
    predictions per query (vsc_review.py), or each query's AP and ranking errors."""
    if isinstance(report, VSCEvaluationResult):  # no per-query AP: the predictions its benchmark reviews
        return vsc_review.vsc_document(report, benchmark_videos(cfg, vsc_review.review_ids(report)),
                                       extractor=extractor, progress=progress)
    return evaluation_document(report, benchmark_videos(cfg, review_ids(report)), extractor=extractor,
                               progress=progress)


def evaluation_document(report: EvaluationResult, videos: dict[str, Path] | None = None, *,
                        extractor: str | None = None, progress: Progress = SILENT) -> dict:
    """The review document of a finished evaluation; `videos` maps ids to their files (None: not at hand)."""
    summary = report.as_dict()
    paper = summary.get("paper") or {}
    metrics = [metric_entry(name, value, paper.get(name)) for name, value in summary["metrics"].items()]
    builder = _EvaluationReview(report, videos or {})
    errors = summary.get("errors", {})
    queries = [builder.query(query, ap, errors.get(query)) for query, ap in summary.get("per_query", {}).items()]
    document = new_document("evaluate", report.dataset, model=report.model, extractor=extractor,
                            random_weights=report.random_weights, notes=_notes(report, summary, videos or {}),
                            metrics=metrics, queries=queries)
    return finish_document(document, builder.thumbnails, progress)


class _EvaluationReview:
    """Builds each query's entry: its errors as pairs, located when the evaluation had the features."""

    def __init__(self, report: EvaluationResult, videos: dict[str, Path]):
        self.located = report.located or {}
        self.videos = videos
        self.thumbnails = ThumbnailBatch()
        self.sampled = {q: pair.query_duration for (q, _), pair in self.located.items()}  # from the frame times
        self._duration = VideoDurations()  # each file probed once

    def query(self, query: str, ap: float, errors: dict | None) -> dict:
        """The QUERY entry: its AP and its errors, positives ranked low first."""
        video = self.videos.get(query)
        hits = [self._pair(query, video, wrong, label, flag)
                for key, label, flag in ERROR_FLAGS for wrong in (errors or {}).get(key, ())]
        return query_entry(query, video=video, duration=self._duration(video) or self.sampled.get(query), ap=ap,
                           hits=hits, hits_note=errors_note(errors))

    def _pair(self, query: str, query_video: Path | None, wrong: dict, label: str, flag: str) -> dict:
        located = self.located.get((query, wrong["id"]))
        video = self.videos.get(wrong["id"])
        sampled = located.target_duration if located is not None else None
        return pair_entry(wrong["id"], wrong["similarity"], located.matches if located is not None else [],
                          target_video=video, query_video=query_video,
                          target_duration=self._duration(video) or sampled, thumbnails=self.thumbnails,
                          heatmap=located.heatmap if located is not None else None, rank=wrong["rank"],
                          label=label, flag=flag)



def review_ids(report: EvaluationResult) -> list[str]:
    """The videos the review shows: each query with an AP and the videos of its errors."""
    summary = report.as_dict()
    errors = summary.get("errors", {})
    return list(dict.fromkeys([*summary.get("per_query", {}),
                               *(wrong["id"] for found in errors.values() for key, _, _ in ERROR_FLAGS
                                 for wrong in found.get(key, ()))]))


def _notes(report: EvaluationResult, summary: dict, videos: dict[str, Path]) -> list[str]:
    """What a reader must know: which metric the errors follow, what is missing and why."""
    notes = []
    if "errors_for" in summary:
        notes.append(f"per-query AP and errors by {summary['errors_for']}: positives ranked below the number of "
                     f"positives, negatives ranked above the last positive (the worst {ERRORS_SHOWN} of each, worst "
                     "first)")
    if report.from_similarities is not None:
        notes.append(NO_HEATMAP_NOTE.format(name=report.from_similarities))
    elif report.model == "features only":
        notes.append(FEATURES_ONLY_NOTE)
    if not videos and report.from_similarities is None:
        notes.append("videos not linked: they are at hand when the evaluation extracts them (--dataset-path)")
    if summary.get("without_positives"):
        left_out = summary["without_positives"]
        notes.append(f"{len(left_out)} {'query' if len(left_out) == 1 else 'queries'} without positives among the "
                     f"videos evaluated, left out: {_ids(left_out)}")
    missing_q, missing_d = summary["missing_queries"], summary["missing_database"]
    if missing_q or missing_d:
        notes.append(f"missing: {len(missing_q)} queries and {len(missing_d)} database videos had no "
                     f"similarities (e.g. {(missing_q or missing_d)[0]})")
    if summary.get("segment_note"):
        notes.append(summary["segment_note"])
    if report.normalization is not None:
        notes.append(f"scores normalized with {report.normalization.noise} (k {report.normalization.k}, "
                     f"β {report.normalization.beta:g})")
    return notes


def _ids(ids: list[str]) -> str:
    named = ", ".join(ids[:SHOWN_IDS])
    return f"{named} and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else named
