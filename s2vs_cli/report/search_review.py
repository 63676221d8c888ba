"""The review document of one `s2vs search --report`: per query its ranked hits, each with its scores, copied
parts, heatmap (kept while the search located it) and, when the videos are at hand, thumbnails and players.

Query videos are the files named on the command line; the collection's videos (and stored queries) are found
by id under the folder given with `--report-videos` (`{id}.*` at any depth).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..progress import SILENT, Progress
from ..scoring.hits import QueryResult
from .compare_review import FEATURES_ONLY_NOTE, VideoDurations
from .document import finish_document, new_document, pair_entry, query_entry
from .thumbnails import ThumbnailBatch
from .video_lookup import VideoFinder

SHOWN_MISSING = 5  # ids named in the note on videos not found
NO_VIDEOS_NOTE = "the collection's videos are not linked: give --report-videos DIR to see them and their thumbnails"


def search_document(results: list[QueryResult], summary: dict, query_videos: Mapping[str, Path],
                    videos: VideoFinder | None = None, *, extractor: str | None = None,
                    progress: Progress = SILENT) -> dict:
    """The review document of a finished search: its `results` and `summary` (as `s2vs search --json` prints
    it), the query video files by label; `videos` finds the stored ids' files."""
    builder = _SearchReview(query_videos, videos)
    queries = [builder.query(result) for result in results]
    notes = [f"search mode: {summary['mode']}"] + builder.missing_note()
    if summary["model"] == "features only":
        notes.append(FEATURES_ONLY_NOTE)
    if "normalization" in summary:
        noise = summary["normalization"]["noise"]
        notes.append(f"normalized: each query's similarities less its noise offset ({noise})")
    if "calibration" in summary:
        calibration = summary["calibration"]
        notes.append(f"verdict: copy when the {'normalized ' if 'normalization' in summary else ''}similarity ≥ "
                     f"{calibration['threshold']:.4f} (precision {calibration['precision']:.3f} at calibration)")
    count = len(queries)
    title = f"search: {count} {'query' if count == 1 else 'queries'} in {Path(summary['database']).name}"
    document = new_document("search", title, model=summary["model"], extractor=extractor,
                            random_weights=summary["random_weights"], notes=notes, queries=queries)
    return finish_document(document, builder.thumbnails, progress)


class _SearchReview:
    """Builds the query entries, asking for thumbnails where both videos are at hand."""

    def __init__(self, query_videos: Mapping[str, Path], videos: VideoFinder | None):
        self.videos = videos
        self.files = dict(query_videos)
        self.thumbnails = ThumbnailBatch()
        self.not_found: set[str] = set()
        self.asked = False  # a stored video was wanted
        self._duration = VideoDurations()  # each file probed once

    def query(self, result: QueryResult) -> dict:
        """The QUERY entry of one result: its hits ranked, or its error."""
        # A query that failed is no stored id (or could not be read): no video to look for.
        video = self.files.get(result.query) or (self._stored(result.query) if result.error is None else None)
        hits = [pair_entry(hit.video_id, hit.similarity, hit.matches or [],
                           target_video=(target := self._stored(hit.video_id)), query_video=video,
                           target_duration=self._duration(target) or hit.target_duration,
                           thumbnails=self.thumbnails, heatmap=hit.heatmap, rank=rank, normalized=hit.normalized,
                           verdict=hit.verdict, threshold=hit.threshold)
                for rank, hit in enumerate(result.hits, 1)]
        return query_entry(result.query, video=video, duration=self._duration(video) or result.duration, hits=hits,
                           error=result.error)

    def missing_note(self) -> list[str]:
        """A note naming the stored videos not found under the videos folder, or saying none was given."""
        if self.videos is None:
            return [NO_VIDEOS_NOTE] if self.asked else []
        if not self.not_found:
            return []
        missing = sorted(self.not_found)
        shown = ", ".join(missing[:SHOWN_MISSING])
        more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
        return [f"{len(missing)} video{'s' if len(missing) > 1 else ''} not found under {self.videos.folder} "
                f"(pattern {self.videos.pattern}): {shown}{more}"]

    def _stored(self, video_id: str) -> Path | None:
        self.asked = True
        if self.videos is None:
            return None
        found = self.videos.find(video_id)
        if found is None:
            self.not_found.add(video_id)
        return found

