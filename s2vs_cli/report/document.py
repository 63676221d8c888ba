"""The review document: what a report shows, as plain data, between the builders and the page writer.

Builders (compare, search, evaluate, saved results) fill a dict in the "s2vs-review/1" layout; the page
writer (page.py) turns it into HTML. Images travel as ReportImage (or PendingImage until decoded; images.py) and video
locations as pathlib.Path, so builders need not know where the page will lie.

The entries are made here: `new_document` (the whole), `query_entry` (one query), `pair_entry` (one query
and target pair), `match_entries` (its copied parts, with thumbnails asked of a ThumbnailBatch) and
`heatmap_entry` (the frame-to-frame map as a small PNG). `finish_document` decodes the thumbnails.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..progress import SILENT, Progress
from .colors import palette_image
from .images import PendingImage, ReportImage

if TYPE_CHECKING:
    from ..scoring.localization import Match
    from .thumbnails import ThumbnailBatch

FORMAT = "s2vs-review/1"
KINDS = ("compare", "search", "evaluate", "dedup")
HEATMAP_MAX_SIDE = 256  # pixels: a 2-hour map stays a few kB, yet a copied part of a few seconds still shows


def new_document(kind: str, title: str, *, model: str, extractor: str | None = None, random_weights: bool = False,
                 notes: Iterable[str] = (), metrics: Iterable[Mapping[str, Any]] = (),
                 queries: Iterable[dict] = ()) -> dict:
    """A review document of `kind` ("compare", "search", "evaluate" or "dedup"), stamped with the time and the tool."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"format": FORMAT, "kind": kind, "title": title,
            "created": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "tool": f"s2vs {__version__}", "model": model, "extractor": extractor,
            "random_weights": bool(random_weights), "notes": [str(note) for note in notes],
            "metrics": [metric_entry(m["name"], m["value"], m.get("paper")) for m in metrics],
            "queries": list(queries)}


def metric_entry(name: str, value: float, paper: float | None = None) -> dict:
    """One row of the metrics table: our value beside the paper's (None where the paper has none)."""
    return {"name": str(name), "value": float(value), "paper": None if paper is None else float(paper)}


def query_entry(query_id: str, *, video: Path | None = None, duration: float | None = None,
                hits: Iterable[dict] = (), ap: float | None = None, error: str | None = None,
                hits_note: str | None = None) -> dict:
    """One query of the document: its id, its video and length when known, and its pairs (`pair_entry`)."""
    return {"id": str(query_id), "video": _path(video), "duration": _number(duration),
            "ap": _number(ap), "error": error, "hits": list(hits), "hits_note": hits_note}


def pair_entry(target: str, similarity: float, matches: Sequence[Match | Mapping[str, float]], *,
               target_video: Path | None, query_video: Path | None, target_duration: float | None,
               thumbnails: ThumbnailBatch | None, heatmap: dict | None, rank: int | None = None,
               normalized: float | None = None, verdict: str | None = None, threshold: float | None = None,
               label: str | None = None, flag: str | None = None) -> dict:
    """One query-target pair: its scores, its copied parts (thumbnails asked of `thumbnails` when the videos
    are at hand) and its heatmap (`heatmap_entry`, or None when no frame map is at hand)."""
    return {"rank": rank, "target": str(target), "target_video": _path(target_video),
            "target_duration": _number(target_duration), "similarity": float(similarity),
            "normalized": _number(normalized), "verdict": verdict, "threshold": _number(threshold),
            "label": label, "flag": flag,
            "matches": match_entries(matches, query_video, target_video, thumbnails),
            "heatmap": heatmap}


def match_entries(matches: Sequence[Match | Mapping[str, float]], query_video: Path | None,
                  target_video: Path | None, thumbnails: ThumbnailBatch | None) -> list[dict]:
    """The MATCH entries of copied parts (Match objects, or their as_dict() form as saved in JSON), with a
    thumbnail of each video at each part's start (None where a video or the batch is missing)."""
    entries = []
    for match in matches or ():
        times = match.as_dict() if hasattr(match, "as_dict") else match
        entry = {key: float(times[key]) for key in ("query_start", "query_end", "target_start", "target_end")}
        entry["score"] = float(times["score"]) if times.get("score") is not None else None
        entry["query_thumb"] = _thumbnail(thumbnails, query_video, entry["query_start"])
        entry["target_thumb"] = _thumbnail(thumbnails, target_video, entry["target_start"])
        entries.append(entry)
    return entries


def heatmap_entry(frame_map: np.ndarray, query_times: np.ndarray, target_times: np.ndarray, fps: float) -> dict:
    """The HEATMAP entry of a [Tq, Tt] frame-to-frame map: colour-mapped as report/heatmap.py does (viridis over
    the map's own range), max-pooled to at most HEATMAP_MAX_SIDE pixels a side so a thin diagonal survives,
    as PNG; rows are query time (down), columns target time. `fps` is the sampling rate: each frame stands for
    1 / fps seconds from its time, so the extents end one frame after the last one."""
    sim = np.asarray(frame_map)
    if sim.ndim != 2 or sim.size == 0:
        raise ValueError(f"frame map must be a non-empty 2-D array [query frames, target frames], got {sim.shape}")
    if sim.dtype not in (np.float32, np.float64):
        sim = sim.astype(np.float32)
    query_times, target_times = np.asarray(query_times, np.float64), np.asarray(target_times, np.float64)
    if query_times.shape != (sim.shape[0],) or target_times.shape != (sim.shape[1],):
        raise ValueError(f"one time per frame needed: map {sim.shape}, times {query_times.shape} and "
                         f"{target_times.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    # A short video repeated to reach the model's minimum length holds the same frames again: keep one copy,
    # so the image's rows and columns run forward in time and the extents place the matches right.
    rows, cols = _first_pass(query_times), _first_pass(target_times)
    sim = sim[:rows, :cols]
    low, high = _value_range(sim)
    pooled = max_pool(sim, HEATMAP_MAX_SIDE)
    scaled = (pooled - low) / (high - low) if high > low else np.sign(pooled - low) * 0.5 + 0.5
    buffer = io.BytesIO()
    palette_image(scaled).save(buffer, format="PNG")
    step = 1.0 / fps
    return {"image": ReportImage(buffer.getvalue(), "png"),
            "query_extent": [float(query_times[:rows].min()), float(query_times[:rows].max() + step)],
            "target_extent": [float(target_times[:cols].min()), float(target_times[:cols].max() + step)],
            "value_range": [low, high]}


def max_pool(values: np.ndarray, max_side: int) -> np.ndarray:
    """`values` [H, W] shrunk to at most `max_side` a side, each cell the largest (NaN-ignoring) of the block
    it covers; a side already small enough is kept."""
    out_rows, out_cols = min(values.shape[0], max_side), min(values.shape[1], max_side)
    # Cell i covers rows [floor(i * H / out), floor((i + 1) * H / out)): every row in exactly one cell.
    pooled = np.fmax.reduceat(values, np.arange(out_rows) * values.shape[0] // out_rows, axis=0)
    return np.fmax.reduceat(pooled, np.arange(out_cols) * values.shape[1] // out_cols, axis=1)


def finish_document(document: dict, thumbnails: ThumbnailBatch | None, progress: Progress = SILENT) -> dict:
    """Decode the thumbnails the document asked for (one pass per video) and add their notes to it."""
    if thumbnails is not None:
        document["notes"].extend(thumbnails.resolve(progress))
    return document


def document_counts(document: dict) -> dict[str, int]:
    """How many queries, pairs, matches and images a document holds (for the commands' closing line); a dedup
    document's pairs are its own list, and its member cards' thumbnails count as images."""
    pairs = [pair for query in document["queries"] for pair in query["hits"]] + list(document.get("pairs", ()))
    matches = [match for pair in pairs for match in pair["matches"]]
    images = [match[side] for match in matches for side in ("query_thumb", "target_thumb")]
    images += [member["thumb"] for group in document.get("groups", ()) for member in group["members"]]
    images = [image.image if isinstance(image, PendingImage) else image for image in images]
    images += [pair["heatmap"]["image"] for pair in pairs if pair["heatmap"] is not None]
    # The page writes an image once however often it is shown: count distinct contents.
    return {"queries": len(document["queries"]), "pairs": len(pairs), "matches": len(matches),
            "images": len({image.data for image in images if image is not None})}


def _thumbnail(thumbnails: ThumbnailBatch | None, video: Path | None, seconds: float) -> PendingImage | None:
    return None if thumbnails is None or video is None else thumbnails.request(video, seconds)


def _first_pass(times: np.ndarray) -> int:
    """How many frames run before the times first go back (the whole length for a video not repeated)."""
    back = np.flatnonzero(np.diff(times) < 0)
    return int(back[0]) + 1 if len(back) else len(times)


def _value_range(sim: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN maps: handled below
        low, high = float(np.nanmin(sim)), float(np.nanmax(sim))
    if not (np.isfinite(low) and np.isfinite(high)):
        finite = sim[np.isfinite(sim)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return low, high


def _path(video: Path | str | None) -> Path | None:
    return None if video is None else Path(video)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)
