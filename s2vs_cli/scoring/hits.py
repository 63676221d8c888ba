"""What a search finds: each query's ranked hits (`QueryResult`), each hit a stored video with its scores and
where it matches the query (`SearchHit`); made by jobs/search.py, shown by the review report and as JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .localization import Match, SegmentTimes


@dataclass
class SearchHit:
    """One result: a stored video, its similarity to the query and where the two match."""

    video_id: str
    similarity: float
    segment: SegmentTimes | None = None  # located for the top hits
    coarse: float | None = None          # the index's score (None in exhaustive search)
    matches: list[Match] | None = None   # every copied part, best first (located hits only)
    normalized: float | None = None      # the similarity less the query's noise offset (with a noise set)
    verdict: str | None = None           # "copy" / "not a copy" by the calibrated threshold (with thresholds)
    threshold: float | None = None       # that threshold
    heatmap: dict | None = None          # for a review report: the frame map as its HEATMAP entry (located hits)
    target_duration: float | None = None  # seconds the stored video's frames span (located hits)
    left_out: int | None = None          # its frames left out of matching as boilerplate (None: none looked for)
    decision: str | None = None          # "copy" when a person marked it a copy of the (stored) query

    def as_dict(self) -> dict:
        """JSON-ready: id, similarity, the index's score, the best matching segment and every copied part;
        the normalized similarity, the verdict with its threshold and a person's decision when there are."""
        summary = {"id": self.video_id, "similarity": self.similarity, "coarse": self.coarse,
                   "segment": self.segment.as_dict() if self.segment is not None else None,
                   "matches": [m.as_dict() for m in self.matches] if self.matches is not None else None}
        if self.normalized is not None:
            summary["normalized"] = self.normalized
        if self.left_out is not None:
            summary["left_out_frames"] = self.left_out
        if self.verdict is not None:
            summary |= {"verdict": self.verdict, "threshold": self.threshold}
        if self.decision is not None:
            summary["decision"] = self.decision
        return summary


@dataclass
class QueryResult:
    """The ranked hits of one query, or why it could not run."""

    query: str
    hits: list[SearchHit] = field(default_factory=list)
    candidates: int = 0        # videos scored with ViSiL
    stages: dict[str, int] = field(default_factory=dict)  # videos each stage scored: index, frame_level, visil
    seconds: float = 0.0
    error: str | None = None
    offset: float | None = None  # with a noise set: β × the similarity to the k-th nearest noise video
    duration: float | None = None  # seconds the query's frames span
    warnings: list[str] = field(default_factory=list)  # the query or a hit was decoded from a damaged file
    left_out: int | None = None  # the query's frames left out of matching as boilerplate (None: none looked for)

    def as_dict(self) -> dict:
        """JSON-ready: the query, its error (None when it ran), how many videos were scored, the hits, warnings."""
        summary = {"query": self.query, "error": self.error, "candidates": self.candidates, "stages": self.stages,
                   "seconds": round(self.seconds, 4), "hits": [hit.as_dict() for hit in self.hits],
                   "warnings": self.warnings}
        if self.offset is not None:
            summary["normalization_offset"] = self.offset
        if self.left_out is not None:
            summary["left_out_frames"] = self.left_out
        return summary
