"""A review document from results saved earlier: `s2vs compare --json`, `s2vs search --json/--output`,
`s2vs evaluate --json/--output` or `s2vs dedup -o`, recognised by their keys (a dedup result's page is
dedup_review.py's).

The frame maps are not saved, so such a report has no heatmaps (it says so). Videos are linked when at hand:
compare's by the paths in the file (relative to the working folder, as they were given), or, for stored ids,
found under a videos folder by a pattern (`{id}.*` by default, at any depth).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..json_file import read_json
from ..progress import SILENT, Progress
from .compare_review import FEATURES_ONLY_NOTE, VideoDurations, best_stretch_note
from .dedup_review import dedup_document
from .document import finish_document, metric_entry, new_document, pair_entry, query_entry
from .thumbnails import ThumbnailBatch
from .video_lookup import VideoFinder

NO_HEATMAP_NOTE = "no heatmaps: the frame-to-frame maps are not saved in {name}"
ERROR_FLAGS = (("positives_ranked_low", "positive", "positive ranked low"),
               ("negatives_ranked_high", "negative", "negative ranked high"))


def saved_results_document(path: str | Path, videos: str | Path | None = None, pattern: str | None = None,
                           progress: Progress = SILENT) -> dict:
    """The review document of the results saved in `path`; `videos` (+ `pattern`) finds the videos of ids."""
    data = load_results(path)
    kind = results_kind(data)
    if kind is None:
        raise ConfigError(f"{path}: not the JSON of s2vs compare, search, evaluate or dedup (none of their keys)")
    if videos is None and pattern is not None:
        raise ConfigError("--pattern goes with --videos DIR")
    finder = VideoFinder(videos, pattern) if videos is not None else None
    if kind == "dedup":  # sources as the result recorded them; --videos finds those moved since
        try:
            return dedup_document(data, videos=finder, progress=progress)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ConfigError(f"{path}: malformed dedup results ({type(error).__name__}: {error})") from None
    builder = _Builder(finder)
    try:
        document = {"compare": builder.compare, "search": builder.search, "evaluate": builder.evaluate}[kind](data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigError(f"{path}: malformed {kind} results ({type(error).__name__}: {error})") from None
    document["notes"].append(NO_HEATMAP_NOTE.format(name=Path(path).name))
    return finish_document(document, builder.thumbnails, progress)


def load_results(path: str | Path) -> dict:
    """The JSON object saved in `path`, or a one-line error naming the file."""
    data = read_json(path, "results file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not the JSON of s2vs compare, search, evaluate or dedup (not an object)")
    return data


def results_kind(data: Mapping[str, Any]) -> str | None:
    """'compare', 'search', 'evaluate' or 'dedup' by the keys each command writes; None for anything else."""
    if {"groups", "pairs"} <= data.keys() and isinstance(data["groups"], list) and isinstance(data["pairs"], list):
        return "dedup"
    if {"query", "target", "similarity", "matches"} <= data.keys():
        return "compare"
    if {"database", "results"} <= data.keys() and isinstance(data["results"], list):
        return "search"
    if "metrics" in data and isinstance(data["metrics"], dict) and ({"dataset", "benchmark"} & data.keys()):
        return "evaluate"
    return None


class _Builder:
    """Turns each kind of saved results into a document, asking for thumbnails where videos are found."""

    def __init__(self, finder: VideoFinder | None):
        self.finder = finder
        self.thumbnails = ThumbnailBatch()
        self._duration = VideoDurations()  # each file probed once

    def compare(self, data: dict) -> dict:
        query_video, target_video = self._file(data["query"]), self._file(data["target"])
        pair = self._pair(data["target"], data, query_video, target_video, data["matches"])
        notes = [str(w) for w in data.get("warnings", ())]
        if data.get("features_only"):
            notes.append(FEATURES_ONLY_NOTE)
        if not data["matches"] and data.get("segment"):
            notes.append(best_stretch_note(data["segment"]))
        notes += self._missing_videos([data["query"], data["target"]], [query_video, target_video])
        title = f"{_name(data['query'])} vs {_name(data['target'])}"
        return new_document("compare", title, model=str(data.get("model", "unknown")),
                            extractor=data.get("extractor"), random_weights=bool(data.get("random_weights")),
                            notes=notes, queries=[self._query(data["query"], query_video, [pair])])

    def search(self, data: dict) -> dict:
        queries, names, found = [], [], []
        for result in data["results"]:
            query_video = self._file(result["query"]) or self._stored(result["query"])
            names.append(result["query"])
            found.append(query_video)
            hits = []
            for rank, hit in enumerate(result.get("hits") or (), 1):
                target_video = self._stored(hit["id"])
                names.append(hit["id"])
                found.append(target_video)
                hits.append(self._pair(hit["id"], hit, query_video, target_video, hit.get("matches") or (), rank))
            queries.append(self._query(result["query"], query_video, hits, error=result.get("error")))
        notes = self._search_notes(data) + self._missing_videos(names, found)
        count = len(queries)
        title = f"search: {count} {'query' if count == 1 else 'queries'} in {_name(str(data['database']))}"
        return new_document("search", title, model=str(data.get("model", "unknown")), extractor=data.get("extractor"),
                            random_weights=bool(data.get("random_weights")), notes=notes, queries=queries)

    def evaluate(self, data: dict) -> dict:
        paper = data.get("paper") or {}
        metrics = [metric_entry(name, value, paper.get(name)) for name, value in data["metrics"].items()
                   if isinstance(value, (int, float))]
        aps, errors = data.get("per_query") or {}, data.get("errors") or {}
        queries, names, found = [], [], []
        for query in [*aps, *(q for q in errors if q not in aps)]:
            query_video = self._stored(query)
            names.append(query)
            found.append(query_video)
            hits = []
            for key, label, flag in ERROR_FLAGS:
                for wrong in (errors.get(query) or {}).get(key, ()):
                    target_video = self._stored(wrong["id"])
                    names.append(wrong["id"])
                    found.append(target_video)
                    hits.append(self._pair(wrong["id"], wrong, query_video, target_video, wrong.get("matches") or (),
                                           wrong.get("rank"), label=label, flag=flag))
            queries.append(self._query(query, query_video, hits, ap=aps.get(query),
                                       hits_note=errors_note(errors.get(query))))
        notes = [] if aps or errors else ["no per-query results in this file (saved by an s2vs without them)"]
        if data.get("errors_for") and (aps or errors):
            notes.append(f"each query's AP and ranking errors by {data['errors_for']}")
        if data.get("segment_note"):
            notes.append(str(data["segment_note"]))
        missing = len(data.get("missing_queries") or ()), len(data.get("missing_database") or ())
        if any(missing):
            notes.append(f"{missing[0]} queries and {missing[1]} database videos had no similarities")
        notes += self._missing_videos(names, found)
        title = str(data.get("dataset") or data.get("benchmark"))
        return new_document("evaluate", title, model=str(data.get("model", "unknown")),
                            extractor=data.get("extractor"), random_weights=bool(data.get("random_weights")),
                            notes=notes, metrics=metrics, queries=queries)

    # --- pieces ---------------------------------------------------------------------------------------------

    def _pair(self, target: str, saved: dict, query_video: Path | None, target_video: Path | None, matches,
              rank: int | None = None, label: str | None = None, flag: str | None = None) -> dict:
        return pair_entry(str(target), saved["similarity"], matches, target_video=target_video,
                          query_video=query_video, target_duration=self._duration(target_video),
                          thumbnails=self.thumbnails, heatmap=None, rank=rank, normalized=saved.get("normalized"),
                          verdict=saved.get("verdict"), threshold=saved.get("threshold"), label=label, flag=flag)

    def _query(self, query: str, video: Path | None, hits: list[dict], **more) -> dict:
        return query_entry(str(query), video=video, duration=self._duration(video), hits=hits, **more)

    def _file(self, named: str) -> Path | None:
        """A video named by its path (relative to the working folder), else by its name under --videos."""
        path = Path(str(named))
        if path.is_file():
            return path
        if self.finder is not None and (self.finder.folder / path.name).is_file():
            return self.finder.folder / path.name
        return None

    def _stored(self, video_id: str) -> Path | None:
        return None if self.finder is None else self.finder.find(str(video_id))


    def _missing_videos(self, names: list[str], found: list[Path | None]) -> list[str]:
        missing = sorted({str(name) for name, video in zip(names, found) if video is None})
        if not missing:
            return []
        if self.finder is None and not any(found):
            return ["no videos linked: give --videos DIR to find the videos of the ids"]
        where = f" under {self.finder.folder} (pattern {self.finder.pattern})" if self.finder is not None else ""
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        return [f"{len(missing)} video{'s' if len(missing) > 1 else ''} not found{where}: {shown}"]

    @staticmethod
    def _search_notes(data: dict) -> list[str]:
        notes = []
        if data.get("mode"):
            notes.append(f"search mode: {data['mode']}")
        if data.get("normalization"):
            notes.append("normalized: each query's similarities less its noise offset (--normalize-with)")
        calibration = data.get("calibration")
        if calibration:
            notes.append(f"verdict: copy when the similarity ≥ {calibration['threshold']:.4f} (precision "
                         f"{calibration['precision']:.3f} at calibration)")
        return notes


def errors_note(errors: Mapping[str, Any] | None) -> str | None:
    """'3 positives ranked below 5, 2 negatives above the last positive (the worst 10 of each shown)'."""
    if not errors:
        return None
    low = errors.get("positives_ranked_low_total", len(errors.get("positives_ranked_low", ())))
    high = errors.get("negatives_ranked_high_total", len(errors.get("negatives_ranked_high", ())))
    below = f"below {errors['positives']}" if "positives" in errors else "low"
    parts = [f"{low} positive{'s' if low != 1 else ''} ranked {below}",
             f"{high} negative{'s' if high != 1 else ''} above the last positive"]
    shown = len(errors.get("positives_ranked_low", ())) + len(errors.get("negatives_ranked_high", ()))
    return ", ".join(parts) + (f" ({shown} shown, the worst first)" if shown < low + high else "")


def _name(path: str) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]
