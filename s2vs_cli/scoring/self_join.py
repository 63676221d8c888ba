"""Stages 1 and 2 of `s2vs dedup`: every pair of stored videos that may share copied content, from one
batched self-join of the search index rather than one search per video.

Stage 1 (segments): every video's segment descriptors (the index's own vectors) are queries against all
the others. Each segment's SEGMENT_NEIGHBOURS x `neighbours` nearest segments are looked up; a video's
candidates are the videos they belong to, best segment first, up to `neighbours` of them, itself left out;
a pair's `coarse` score is its best segment inner product. Small collections (<= EXACT_SEGMENTS segments)
are scanned exhaustively. Above, each segment is compared with the segments of its `probes` nearest inverted
lists (default JOIN_NPROBE; lists of LIST_SIZE / 2 to LIST_SIZE segments, float16): an exhaustive scan of
500,000 x 500,000 segments would be 1.3e14 multiply-adds, the lists a few hundredth of that. The lists and each
segment's nearest ones are kept beside the index and extended as it grows (join_lists.py), so an increment
searches exactly the lists a full run would.
Each unordered pair is kept once (first < second), with the better coarse score of its two sides; pairs
whose coarse score is below `min_coarse` go no further.
Stage 2 (frames): each pair's frame-level Chamfer similarity (scoring/frame_level.py) in both directions,
their mean; pairs below `min_frame_level` are dropped. Frame descriptors are read in tiles: the first
videos of a range of about RANGE_FRAMES frames are held while the second videos of each range are read
once for them, so the index's frame descriptors are read about (ranges / 2) times in all, never once per
pair, and memory stays bounded by two ranges.
`keep_frames` (boilerplate suppression) leaves frames out of stage 2, and the segments whose frames it
mostly leaves out (more than half) out of stage 1, as queries and as targets: an intro shared by thousands of
videos would otherwise fill every one's `neighbours` slots with the others and crowd out their copies.
An increment (`touching`: dedup --previous) looks only for the pairs of some videos (new ones, and those whose
kept frames changed): their segments are searched against all, the others' against theirs only, so a pair a full
join would find from either side is found (a full join's `neighbours` cap may crowd out some that this finds).
Under torchrun each rank queries every W-th video in stage 1 and scores every W-th first video's pairs in
stage 2; each stage's pairs are gathered and merged, and every rank returns the same result.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..distributed import ProcessGroup
from ..progress import SILENT, Progress
from ..storage.index import SEGMENT_FRAMES, VideoIndex
from .frame_level import frame_level_both_ways
from .join_lists import JoinLists, join_lists_of_index

DEFAULT_NEIGHBOURS = 100
MIN_FRAME_LEVEL = 0.17     # measured on synthetic stores: planted pairs >= 0.199, unrelated <= 0.12 (BENCHMARKS.md)
MIN_COARSE = 0.2           # measured likewise: planted pairs' coarse scores >= 0.23 at 5,000 videos; -1: no floor
SEGMENT_NEIGHBOURS = 2     # nearest segments looked up a segment, per candidate video wanted (as search)
EXACT_SEGMENTS = 65_536    # at most this many segments: an exhaustive scan (128 MB of float32)
LIST_SIZE = 256            # segments an inverted list holds at most (half as many at least: join_lists.py)
JOIN_NPROBE = 16           # inverted lists searched a segment: recall against time in BENCHMARKS.md
TRAINING_PER_LIST = 32     # training vectors per list (a seeded sample of the segments: join_lists.py)
QUERY_SEGMENTS = 8192      # query segments searched at a time (whole videos)
RANGE_FRAMES = 3 << 17     # frames held a side in stage 2: 0.8 GB of 512-d float32 each
KEPT_SHARE = 0.5           # a segment with fewer of its frames kept is left out of stage 1


@dataclass
class CandidatePairs:
    """Pairs of stored videos that may share copied content, each pair once (first < second, catalogue numbers)."""

    first: np.ndarray        # int64 [P], catalogue numbers of the index (VideoIndex.catalogue.ids[n] is the id)
    second: np.ndarray       # int64 [P], first < second
    coarse: np.ndarray       # float32 [P], best segment-descriptor inner product between the two videos
    frame_level: np.ndarray  # float32 [P], frame-level Chamfer, mean of both directions (scoring/frame_level.py)
    stages: dict = field(default_factory=dict)  # how many pairs each stage saw/kept, seconds per stage

    def __len__(self) -> int:
        return len(self.first)


def candidate_pairs(index: VideoIndex, *, neighbours: int = DEFAULT_NEIGHBOURS,
                    min_frame_level: float = MIN_FRAME_LEVEL,
                    keep_frames: Callable[[int, np.ndarray], np.ndarray] | None = None,
                    kept: np.ndarray | None = None,
                    group: ProcessGroup | None = None, progress: Progress = SILENT,
                    min_coarse: float = MIN_COARSE, probes: int | None = None,
                    touching: Callable[[np.ndarray | None], np.ndarray | None] | None = None,
                    lists: JoinLists | None = None) -> CandidatePairs:
    """The pairs of `index`'s videos whose frame-level score reaches `min_frame_level`, found by the batched
    self-join of the module's docstring (`keep_frames(number, frame descriptors [T, D]) -> bool [T]`, or `kept`:
    the frames kept, bool [frames]; `touching(frames kept: bool [frames] or None for all) -> bool [videos] whose
    pairs are wanted, None: all`; `lists`: index_join_lists's, when the caller has them)."""
    group = group or ProcessGroup()
    started = time.perf_counter()
    if keep_frames is not None:
        kept = _kept_frames(index, keep_frames, progress)
    elif kept is not None and np.shape(kept) != (int(index.frames.offsets[-1]),):
        raise ValueError(f"kept has shape {np.shape(kept)} for the index's {int(index.frames.offsets[-1])} frames")
    stages: dict = {"kept_frames": {"frames": int(index.frames.offsets[-1]),
                                    "kept": int(kept.sum()) if kept is not None else int(index.frames.offsets[-1]),
                                    "seconds": round(time.perf_counter() - started, 3)}}
    touched = touching(kept) if touching is not None else None
    started = time.perf_counter()
    found, how = nearest_videos(index, neighbours, kept, group, progress, probes, touched, lists)
    first, second, coarse = _merge(group.gather(found))
    near = coarse >= min_coarse
    stages["segments"] = {"join": how, "pairs": len(first), "kept": int(near.sum()),
                          "seconds": round(time.perf_counter() - started, 3)}
    first, second, coarse = first[near], second[near], coarse[near]
    started = time.perf_counter()
    mine = first % group.world_size == group.rank
    scored = frame_level_pairs(index, first[mine], second[mine], kept, progress)
    scores = np.empty(len(first), dtype=np.float32)
    scores[np.flatnonzero(mine)] = scored
    if group.distributed:  # every rank scored its share of the same merged list: put the shares together
        for rank, share in enumerate(group.gather(scored)):
            scores[np.flatnonzero(first % group.world_size == rank)] = share
    passed = scores >= min_frame_level
    stages["frame_level"] = {"pairs": len(first), "kept": int(passed.sum()),
                             "seconds": round(time.perf_counter() - started, 3)}
    return CandidatePairs(first[passed], second[passed], coarse[passed], scores[passed], stages)


def segment_vectors(index: VideoIndex) -> np.ndarray:
    """float16 [segments, D]: the index's own segment descriptors, in entry order (a flat index's codes are
    the float16 vectors themselves; inverted-list kinds give back what their codes reconstruct)."""
    import faiss  # late: faiss loads in a second; the module is imported by commands that may never join

    raw = index.index
    if isinstance(raw, faiss.IndexScalarQuantizer) and raw.sq.qtype == faiss.ScalarQuantizer.QT_fp16:
        return faiss.vector_to_array(raw.codes).view(np.float16).reshape(raw.ntotal, raw.d)
    raw.make_direct_map()
    out = np.empty((raw.ntotal, raw.d), dtype=np.float16)
    for start in range(0, raw.ntotal, QUERY_SEGMENTS):
        count = min(QUERY_SEGMENTS, raw.ntotal - start)
        out[start:start + count] = raw.reconstruct_n(start, count)
    return out


def nearest_videos(index: VideoIndex, neighbours: int, kept: np.ndarray | None = None,
                   group: ProcessGroup | None = None,
                   progress: Progress = SILENT,
                   probes: int | None = None,
                   touched: np.ndarray | None = None,
                   lists: JoinLists | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]:
    """Stage 1 for this rank's query videos: ((first, second, coarse) of each video's candidates, first <
    second, a pair possibly twice), and how the join was made; with `touched` (bool [videos]) only pairs with
    one of them: their segments searched against all, the others' against theirs only. `lists`: the index's
    join lists when the caller has them (else read or made here; None for a small index either way)."""
    group = group or ProcessGroup()
    vectors = segment_vectors(index)
    used = _kept_segments(index, kept) if kept is not None else np.ones(len(vectors), dtype=bool)
    lists = lists if lists is not None else index_join_lists(index, probes, progress, vectors)
    mine = np.arange(len(index)) % group.world_size == group.rank
    if touched is None:
        return _nearest(index, vectors, used, used, np.flatnonzero(mine), neighbours, progress, lists, probes)
    theirs = used & np.repeat(np.asarray(touched, dtype=bool), np.diff(index.starts))
    found, how = _nearest(index, vectors, used, used, np.flatnonzero(mine & touched), neighbours, progress, lists,
                          probes)
    others, _ = _nearest(index, vectors, used, theirs, np.flatnonzero(mine & ~touched), neighbours, progress, lists,
                         probes)
    return tuple(np.concatenate(parts) for parts in zip(found, others)), how


def index_join_lists(index: VideoIndex, probes: int | None = None, progress: Progress = SILENT,
                     vectors: np.ndarray | None = None) -> JoinLists | None:
    """The inverted lists the join searches (scoring/join_lists.py: kept beside the index, extended as it grows);
    None when the index has few enough segments to be scanned whole."""
    vectors = segment_vectors(index) if vectors is None else vectors
    if len(vectors) <= EXACT_SEGMENTS:
        return None
    return join_lists_of_index(index, vectors, probes or JOIN_NPROBE, LIST_SIZE, TRAINING_PER_LIST, progress)


def _nearest(index: VideoIndex, vectors: np.ndarray, queried_segments: np.ndarray, target_segments: np.ndarray,
             queried: np.ndarray, neighbours: int, progress: Progress, lists: JoinLists | None,
             probes: int | None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]:
    """Stage 1 of the videos `queried` (catalogue numbers): their `queried_segments` searched among the
    `target_segments` (bool [segments] both)."""
    search, how = _segment_search(vectors, target_segments, lists, probes)
    video_of = np.repeat(np.arange(len(index), dtype=np.int64), np.diff(index.starts))
    progress.stage("self-join: nearest segments", total=len(queried), unit="videos")
    k = min(int(target_segments.sum()), SEGMENT_NEIGHBOURS * neighbours + 1)  # +1: a segment finds itself
    pieces, done = [], 0
    for videos in _batches(index.starts, queried, QUERY_SEGMENTS):
        rows = _runs(index.starts[videos], index.starts[videos + 1] - index.starts[videos])
        rows = rows[queried_segments[rows]]
        if len(rows) and k > 0:
            scores, found = search(rows, k)
            pieces.append(_best_videos(video_of[rows], scores, found, video_of, neighbours))
        done += len(videos)
        progress.update(done, len(queried))
    empty = np.zeros(0, dtype=np.int64)
    if not pieces:
        return (empty, empty, np.zeros(0, dtype=np.float32)), how
    return tuple(np.concatenate(part) for part in zip(*pieces)), how


def frame_level_pairs(index: VideoIndex, first: np.ndarray, second: np.ndarray, kept: np.ndarray | None = None,
                      progress: Progress = SILENT) -> np.ndarray:
    """Stage 2: float32 [P], each pair's frame-level Chamfer, mean of both directions (0 when either
    video has no frame kept), computed tile by tile (module docstring)."""
    frames = index.frames
    scores = np.zeros(len(first), dtype=np.float32)
    progress.stage("self-join: frame-level scores", total=len(first), unit="pairs")
    if not len(first):
        return scores
    band = frames.offsets[:-1] // RANGE_FRAMES  # the range each video's frames start in
    order = np.lexsort((second, first, band[second], band[first]))
    tiles = band[first[order]] * (int(band.max()) + 1) + band[second[order]]
    bounds = np.flatnonzero(np.diff(tiles)) + 1
    held_band, held, done = -1, None, 0
    for tile in np.split(order, bounds):
        targets = None  # freed before the next read: two ranges in memory, never three
        if band[first[tile[0]]] != held_band:  # the first videos of a new range: read them once, keep them
            held_band, held = band[first[tile[0]]], None
            in_band = order[band[first[order]] == held_band]
            held = _read(index, np.unique(first[in_band]), kept)
        targets = _read(index, np.unique(second[tile]), kept)
        for pairs in np.split(tile, np.flatnonzero(np.diff(first[tile])) + 1):
            scores[pairs] = _score_one(held, first[pairs[0]], targets, second[pairs])
        done += len(tile)
        progress.update(done, len(first))
    return scores


class _Videos:
    """Frame descriptors of some videos, laid end to end (kept frames only): numbers, where each starts, lengths."""

    def __init__(self, numbers: np.ndarray, data: np.ndarray, lengths: np.ndarray):
        self.numbers, self.data, self.lengths = numbers, data, lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def rows(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers of `numbers`' frames one after another, each one's length)."""
        where = np.searchsorted(self.numbers, numbers)
        return _runs(self.starts[where], self.lengths[where]), self.lengths[where]


def _read(index: VideoIndex, numbers: np.ndarray, kept: np.ndarray | None) -> _Videos:
    """Videos `numbers`' frame descriptors (their kept frames only), in float32: converted once a tile, not
    once a pair (float16 to float32 costs as much as the product when done per pair)."""
    data, lengths = index.frames.read(numbers)
    if kept is not None:
        mask = kept[_runs(index.frames.offsets[numbers], lengths)]
        data = data[mask]
        counted = np.concatenate([[0], np.cumsum(mask)])
        ends = np.cumsum(lengths)
        lengths = counted[ends] - counted[ends - lengths]
    return _Videos(numbers, data.astype(np.float32), np.asarray(lengths, dtype=np.int64))


def _score_one(held: _Videos, query: int, targets: _Videos, numbers: np.ndarray) -> np.ndarray:
    """Mean of both Chamfer directions between video `query` and each of `numbers` (0 without frames)."""
    out = np.zeros(len(numbers), dtype=np.float32)
    query_rows, _ = held.rows(np.array([query]))
    rows, lengths = targets.rows(numbers)
    present = lengths > 0
    if not len(query_rows) or not present.any():
        return out
    forward, backward = frame_level_both_ways(torch.from_numpy(held.data[query_rows]), targets.data[rows],
                                              lengths[present])
    out[present] = (forward + backward) / 2
    return out


def _runs(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The numbers start..start + length - 1 of each run, one run after another."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)


def _kept_frames(index: VideoIndex, keep_frames: Callable[[int, np.ndarray], np.ndarray],
                 progress: Progress) -> np.ndarray:
    """bool [all frames, in catalogue order]: what `keep_frames` keeps of every video, asked once a video."""
    frames = index.frames
    kept = np.ones(int(frames.offsets[-1]), dtype=bool)
    progress.stage("self-join: frames to keep", total=len(index), unit="videos")
    for videos in _batches(frames.offsets, np.arange(len(index)), RANGE_FRAMES // 16):
        data, lengths = frames.read(videos)
        for number, start, length in zip(videos.tolist(), np.cumsum(lengths) - lengths, lengths.tolist()):
            mask = np.asarray(keep_frames(number, data[start:start + length]), dtype=bool)
            if mask.shape != (length,):
                raise ValueError(f"keep_frames gave {mask.shape} for video number {number}'s {length} frames")
            kept[frames.offsets[number]:frames.offsets[number] + length] = mask
        progress.update(int(videos[-1]) + 1, len(index))
    return kept


def _kept_segments(index: VideoIndex, kept: np.ndarray) -> np.ndarray:
    """bool [segments]: the segments with at least KEPT_SHARE of their frames kept."""
    counts = np.diff(index.frames.offsets)
    video = np.repeat(np.arange(len(counts)), counts)
    frame = np.arange(len(kept)) - index.frames.offsets[video]
    segment = index.starts[video] + frame // SEGMENT_FRAMES
    total = np.bincount(segment, minlength=int(index.starts[-1]))
    return np.bincount(segment, weights=kept, minlength=int(index.starts[-1])) >= KEPT_SHARE * np.maximum(total, 1)


def _segment_search(vectors: np.ndarray, used: np.ndarray, lists: JoinLists | None, probes: int | None = None):
    """(search(rows, k) -> (scores, entry numbers) of the `used` segments nearest to segments `rows`, how): an
    exhaustive scan without `lists`, else each query's `probes` nearest lists."""
    import faiss  # late: as segment_vectors

    rows = np.flatnonzero(used)
    if lists is not None:
        nprobe = min(probes or JOIN_NPROBE, len(lists.centroids))
        searcher = lists.searcher(vectors, rows, nprobe)
        return (lambda queries, k: lists.search(searcher, vectors, queries, k),
                f"inverted lists: {len(lists.centroids)} lists, {nprobe} searched")
    index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
    for start in range(0, len(rows), QUERY_SEGMENTS):
        chunk = rows[start:start + QUERY_SEGMENTS]
        index.add_with_ids(np.ascontiguousarray(vectors[chunk], dtype=np.float32), chunk)
    return lambda queries, k: index.search(np.ascontiguousarray(vectors[queries], dtype=np.float32), k), "exact"


def _batches(starts: np.ndarray, videos: np.ndarray, size: int):
    """`videos` in runs of whole videos holding about `size` entries (segments or frames) each."""
    if not len(videos):
        return
    counts = starts[videos + 1] - starts[videos]
    cuts = np.flatnonzero(np.diff(np.cumsum(counts) // max(1, size))) + 1
    yield from np.split(videos, cuts)


def _best_videos(query_video: np.ndarray, scores: np.ndarray, found: np.ndarray, video_of: np.ndarray,
                 neighbours: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query video's best `neighbours` other videos among its segments' nearest: (first, second, coarse)."""
    real = found >= 0
    mine = np.repeat(query_video, found.shape[1]).reshape(found.shape)[real]
    theirs, scores = video_of[found[real]], scores[real]
    other = theirs != mine
    mine, theirs, best = _best_of_each_pair(mine[other], theirs[other], scores[other])  # at its best segment
    # each query's videos best first, ties in video order (the pairs are in (query, video) order: a stable sort
    # keeps it); one float64 key: a query's number apart by 4, scores (within [-1.01, 1.01]) resolved to 1e-10
    order = np.argsort(mine * 4.0 - best.astype(np.float64), kind="stable")
    mine, theirs, best = mine[order], theirs[order], best[order]
    first = np.flatnonzero(np.concatenate([[True], mine[1:] != mine[:-1]])) if len(mine) else mine
    rank = np.arange(len(mine)) - np.repeat(first, np.diff(np.append(first, len(mine))))
    top = rank < neighbours
    mine, theirs, best = mine[top], theirs[top], best[top]
    return np.minimum(mine, theirs), np.maximum(mine, theirs), best.astype(np.float32)


def _merge(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rank's stage-1 pairs as one list, each unordered pair once with its better coarse score,
    sorted by (first, second)."""
    first = np.concatenate([part[0] for part in found])
    second = np.concatenate([part[1] for part in found])
    coarse = np.concatenate([part[2] for part in found])
    return _best_of_each_pair(first, second, coarse)


def _best_of_each_pair(first: np.ndarray, second: np.ndarray, scores: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (first, second) once with its best score, sorted by (first, second): one sort of one int64 key (10 M
    pairs: 1 s; a three-key lexsort took 5)."""
    if not len(first):
        return first, second, scores
    videos = np.int64(max(int(first.max()), int(second.max())) + 1)
    pair = first * videos + second
    order = np.argsort(pair, kind="stable")
    pair, scores = pair[order], scores[order]
    starts = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]]))
    return pair[starts] // videos, pair[starts] % videos, np.maximum.reduceat(scores, starts)
