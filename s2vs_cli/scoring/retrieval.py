"""Score query videos against a database of stored features, as the original evaluation does.

What `s2vs evaluate` (and `s2vs search`) run. Queries are prepared once (indexed by the network,
kept on the device); the database is read block by block, the next block loading while the current
one is scored, and each database video is indexed once for all queries. Scores follow docs/METHOD.md §3:
videos under 4 frames are repeated (doubling) when read; a target longer than 2,048 frames is split
into 2,048-frame chunks, the query is compared with each and the scores averaged. Every score is in
[-1, 1] (similarity_range.py): one outside is an error naming the pair, never ranked.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..atomic import OutputWriteError, write_text_atomically, write_with
from ..errors import FeatureStoreError, S2VSError
from ..json_file import parse_json
from ..compute import autocast
from ..models.visil import COMPARATOR_MIN_FRAMES, ViSiL, compute_dtype
from ..progress import SILENT, Progress
from .many_targets import TargetColumns, TargetGroup, coarse_size, group_similarities, padded_size, target_groups
from .region_attention import PRODUCT_FRAMES, RegionAttention, frame_groups
from .similarity_range import Similarities, bounded_similarity
from ..storage.integrity import error_reason
from ..storage.store import FeatureStore, hdf5_write_failed
from ..models.short_videos import repeat_factor

# (video id, its features [T, ...]) -> the frames of it to score (search and calibrate leave boilerplate out)
FrameSelect = Callable[[str, np.ndarray], np.ndarray]

TARGET_CHUNK_FRAMES = 2048  # the original's chunk of long targets (published numbers depend on it)
DATABASE_BLOCK = 256  # database videos read, indexed and scored together...
BLOCK_FRAMES = 65_536  # ...up to this many frames (~1.2 GB of float32 features)

HDF5_SUFFIXES = (".h5", ".hdf5")

def repeat_to_min_frames(features: np.ndarray, min_frames: int = COMPARATOR_MIN_FRAMES) -> np.ndarray:
    """Concatenate a short video with itself (doubling) until it has at least `min_frames` frames."""
    repeated = repeat_factor(features.shape[0], min_frames)
    return np.tile(features, (repeated,) + (1,) * (features.ndim - 1)) if repeated > 1 else features


def _as_float32(features: np.ndarray) -> torch.Tensor:
    """float16 or float32 features as a float32 tensor (torch converts float16 several times faster than numpy)."""
    return torch.from_numpy(np.ascontiguousarray(features)).float()


def split_long_target(features: torch.Tensor, chunk_frames: int = TARGET_CHUNK_FRAMES) -> list[torch.Tensor]:
    """Consecutive chunks of `chunk_frames` frames; a last chunk under 4 frames is repeated to 4 or more."""
    if features.shape[0] == 0:
        raise ValueError("a video without frames cannot be scored")
    chunks = list(torch.split(features, chunk_frames))
    while chunks[-1].shape[0] < COMPARATOR_MIN_FRAMES:
        chunks[-1] = torch.cat([chunks[-1], chunks[-1]])
    return chunks


@dataclass
class PreparedTargets:
    """A block of targets ready to score against any number of queries (see VideoScorer.prepare_targets)."""

    count: int                  # targets
    owners: np.ndarray          # chunk index -> target index
    groups: list[TargetGroup]   # the chunks, indexed by the network and laid out for the products
    generation: int = 0         # the attention's block they are views of (RegionAttention.generation)


class VideoScorer:
    """Video-to-video similarity with the ViSiL network, or features only (raw Chamfer) without it."""

    def __init__(self, network: ViSiL | None, device: torch.device, precision: str = "fp32",
                 chunk_frames: int = TARGET_CHUNK_FRAMES, few_shapes: bool = False):
        self.network, self.device, self.precision, self.chunk_frames = network, device, precision, chunk_frames
        # `few_shapes`: every product padded to coarse_size's few sizes, queries included, for callers whose every
        # query has another length and other partners (dedup): the CPU keeps a bf16 kernel per shape it meets, and
        # with padded_size's finer steps they piled up to GBs. Padding is exact: zero frames, dropped.
        self.few_shapes = few_shapes
        self.size = coarse_size if few_shapes else padded_size
        self._attention = RegionAttention(network, device, precision, self.size) if network is not None else None

    @torch.inference_mode()
    def prepare_query(self, features: np.ndarray) -> torch.Tensor:
        """A query [T, R, D] on the device, indexed by the network (whole: queries are not chunked)."""
        query = _as_float32(features)
        if self.few_shapes and self.network is not None:  # attention treats each region vector alone: exact
            padded = query.new_zeros((self.size(len(query)), *query.shape[1:]))
            padded[:len(query)] = query
            return self._index(padded)[:len(query)]
        return self._index(query)

    @torch.inference_mode()
    def prepare_targets(self, videos: Sequence[np.ndarray]) -> PreparedTargets:
        """Targets [T, R, D] split into chunks on the device, indexed and laid out once for all queries."""
        # Without a network the chunks are the targets; with one, they are copied (and converted) into a reused
        # buffer to be indexed, so they stay in their stored dtype until then.
        load = _as_float32 if self.network is None else (lambda v: torch.from_numpy(np.ascontiguousarray(v)))
        per_target = [split_long_target(load(v), self.chunk_frames) for v in videos]
        owners = np.repeat(np.arange(len(videos)), [len(chunks) for chunks in per_target])
        chunks = self._index_many([chunk for target in per_target for chunk in target])
        with autocast(self.device, self.precision):
            dtype = compute_dtype(chunks[0]) if chunks else torch.float32
            if self.network is not None:  # lengths sorted into small batches for the comparator
                groups = target_groups(chunks, dtype, size=self.size)
            else:  # as many frames as one matrix product holds, in any order
                positions = list(range(len(chunks)))
                groups = [TargetGroup(indices, [chunks[i] for i in indices],
                                      TargetColumns([chunks[i] for i in indices], dtype, self.size))
                          for indices in _groups(positions, [len(c) for c in chunks], PRODUCT_FRAMES)]
        generation = self._attention.generation if self._attention is not None else 0
        return PreparedTargets(len(videos), owners, groups, generation)

    def _index_many(self, videos: list[torch.Tensor]) -> list[torch.Tensor]:
        """Index many videos with few large products: frames of several videos go through attention together
        (it treats every region vector on its own, so this is exact), PRODUCT_FRAMES at a time."""
        if self.network is None:
            return [video.to(self.device) for video in videos]
        if self._attention.in_place:  # into reused buffers (scoring/region_attention.py)
            return self._attention.apply(videos)
        indexed: list[torch.Tensor] = []
        for group in frame_groups([len(v) for v in videos], PRODUCT_FRAMES):
            members = [videos[i].float() for i in group]
            lengths = [len(v) for v in members]
            padding = members[0].new_zeros((self.size(sum(lengths)) - sum(lengths), *members[0].shape[1:]))
            together = self._index(torch.cat([*members, padding]))
            indexed.extend(torch.split(together, lengths + [len(padding)])[:len(group)])
        return indexed

    def _index(self, features: torch.Tensor) -> torch.Tensor:
        features = features.to(self.device)
        if self.network is None:
            return features
        with autocast(self.device, self.precision):
            return self.network.index_video(features)

    @torch.inference_mode()
    def score(self, query: torch.Tensor, targets: PreparedTargets,
              maps: dict[int, torch.Tensor] | None = None) -> np.ndarray:
        """Similarity of one prepared query to each prepared target -> float64 [targets.count].

        With `maps`, each target scored in one piece (not split into chunks, not tiled) also leaves there
        its frame map [Tq, Tt] (float32, on the CPU), keyed by its position: what its matches are located on.
        """
        if targets.count == 0:
            return np.zeros(0)
        if self._attention is not None and targets.generation != self._attention.generation:
            raise RuntimeError("these targets were overwritten: score each block before preparing the next")
        values = torch.empty(len(targets.owners), dtype=torch.float64)
        whole = np.bincount(targets.owners, minlength=targets.count) == 1
        with autocast(self.device, self.precision):
            for group in targets.groups:
                kept: list | None = [] if maps is not None else None
                if self.network is None:
                    scores = group.columns.chamfer_similarities(query, maps=kept, pad_rows=self.few_shapes)
                else:
                    scores = group_similarities(self.network, query, group, maps=kept)
                values[group.indices] = scores.double().cpu()
                for chunk, frame_map in zip(group.indices, kept or ()):
                    target = int(targets.owners[chunk])
                    if frame_map is not None and whole[target]:
                        maps[target] = frame_map.float().cpu()
        values = values.numpy()
        chunk_counts = np.bincount(targets.owners, minlength=targets.count)
        return np.bincount(targets.owners, weights=values, minlength=targets.count) / chunk_counts


@dataclass
class ScoredCollection:
    """Scores of every present query against every present database video, and what was missing."""

    similarities: Similarities
    missing_queries: list[str] = field(default_factory=list)
    missing_database: list[str] = field(default_factory=list)


def score_store(store_path: str, queries: Sequence[str], database: Sequence[str], scorer: VideoScorer,
                progress: Progress = SILENT, block: int = DATABASE_BLOCK,
                select: FrameSelect | None = None) -> ScoredCollection:
    """Score `queries` against `database`, both read from one feature file; absent ids are reported. `select`
    (id, features) gives the frames of each video, query or not, to score (calibrate leaves boilerplate out).

    `progress.update(done, total)` counts database videos scored against every query.
    """
    with FeatureStore(store_path) as store:
        ids = set(store.ids())
        requested = set(queries) | set(database)
        stored = {i for i in requested & ids if store.shape(i)[0] > 0}  # a video without frames counts as missing
        present_queries = [q for q in dict.fromkeys(queries) if q in stored]
        present_database = [d for d in dict.fromkeys(database) if d in stored]
        prepared = {q: scorer.prepare_query(read_video(store, q, select)) for q in present_queries}
        similarities = score_prepared(store, prepared, present_database, scorer, progress, block, select=select)
    return ScoredCollection(similarities, [q for q in dict.fromkeys(queries) if q not in stored],
                            [d for d in dict.fromkeys(database) if d not in stored])


def score_prepared(store: FeatureStore, queries: dict[str, torch.Tensor], database: Sequence[str],
                   scorer: VideoScorer, progress: Progress = SILENT,
                   block: int = DATABASE_BLOCK, maps: dict[str, torch.Tensor] | None = None,
                   select: FrameSelect | None = None) -> Similarities:
    """Scores of prepared queries against stored videos (all present), reading the store block by block; with
    one query, `maps` receives the frame map of each video scored in one piece (VideoScorer.score); `select`
    (id, features) gives the frames of each stored video to score (search leaves boilerplate out)."""
    if maps is not None and len(queries) != 1:
        raise ValueError("frame maps are kept for one query at a time")
    similarities: dict[str, dict[str, float]] = {q: {} for q in queries}
    lengths = [max(store.shape(d)[0], COMPARATOR_MIN_FRAMES) for d in database]
    blocks = _groups(list(database), lengths, BLOCK_FRAMES, block)
    done = 0
    # h5py serialises file access, so the prefetch reads while the model runs, never alongside another read.
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(_read_block, store, blocks[0], select) if blocks else None
        for index, ids in enumerate(blocks):
            features = pending.result()
            pending = reader.submit(_read_block, store, blocks[index + 1], select) if index + 1 < len(blocks) else None
            targets = scorer.prepare_targets(features)
            for query, indexed in queries.items():
                kept: dict[int, torch.Tensor] | None = {} if maps is not None else None
                scores = _bounded(store, query, ids, scorer.score(indexed, targets, kept).tolist())
                if kept:
                    maps.update((ids[i], frame_map) for i, frame_map in kept.items())
                similarities[query].update(zip(ids, scores))
            done += len(ids)
            progress.update(done, len(database))
    return similarities


def _bounded(store: FeatureStore, query: str, ids: Sequence[str], scores: Sequence[float]) -> list[float]:
    """The scores within [-1, 1]; one outside is never ranked: it is damage, named with its pair."""
    bounded = [bounded_similarity(score) for score in scores]
    for video_id, score, kept in zip(ids, scores, bounded):
        if kept is None:
            raise FeatureStoreError(f"{store.path}: '{query}' against '{video_id}' gives a similarity of {score:.6g}, "
                                    f"outside [-1, 1]; their features are damaged (`s2vs verify {store.path}` checks "
                                    "the file)")
    return bounded


def _groups(items: list, lengths: Sequence[int], max_frames: int, max_items: int | None = None) -> list[list]:
    """Consecutive groups of `items` with at most `max_frames` frames (and `max_items` items) in each;
    an item longer than `max_frames` is a group of its own."""
    groups: list[list] = []
    frames = 0
    for item, length in zip(items, lengths):
        if not groups or frames + length > max_frames or len(groups[-1]) == max_items:
            groups.append([])
            frames = 0
        groups[-1].append(item)
        frames += length
    return groups


def read_video(store: FeatureStore, video_id: str,
               select: FrameSelect | None = None) -> np.ndarray:
    """A stored video's features [T, R, D] as evaluation reads them: short videos repeated to 4 frames; `select`
    (id, features): only the frames it gives (search and calibrate leave boilerplate out)."""
    features = store.read_features(video_id)
    return repeat_to_min_frames(features if select is None else select(video_id, features))


def _read_block(store: FeatureStore, ids: list[str], select: FrameSelect | None = None
                ) -> list[np.ndarray]:
    return [read_video(store, video_id, select) for video_id in ids]


def save_similarities(path: str | Path, similarities: Similarities) -> None:
    """Write {query: {target: score}}: `.json` (the original tool's layout) or `.h5`/`.hdf5` for large runs.

    The HDF5 layout has one group per query (in a top-level `queries` group, as ids may hold '/')
    with string dataset `targets` and float64 `scores`. Written whole or not at all (atomic.py).
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            write_text_atomically(path, json.dumps(similarities))
        elif path.suffix.lower() in HDF5_SUFFIXES:
            write_with(path, lambda temporary: _write_similarities_hdf5(temporary, similarities))
        else:
            raise S2VSError(f"{path}: similarities are saved as .json or .h5, not '{path.suffix}'")
    except OutputWriteError as e:
        raise S2VSError(f"{path}: cannot write similarities ({e.reason})") from None


def _write_similarities_hdf5(path: Path, similarities: Similarities) -> None:
    try:
        with h5py.File(path, "w") as handle:
            group = handle.create_group("queries")
            for index, (query, scores) in enumerate(similarities.items()):
                entry = group.create_group(str(index))
                entry.attrs["query"] = query
                entry.create_dataset("targets", data=np.array(list(scores), dtype=h5py.string_dtype()))
                entry.create_dataset("scores", data=np.array(list(scores.values()), dtype=np.float64))
    except (OSError, RuntimeError) as e:  # HDF5's text puts the system's cause after a multi-line timestamp
        hdf5_write_failed(True)
        raise OSError(error_reason(e)) from None


def load_similarities(path: str | Path) -> Similarities:
    """Read what save_similarities wrote (or the original tool's .json); one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise S2VSError(f"{path}: similarities file not found")
    try:
        if path.suffix.lower() == ".json":
            data = parse_json(path.read_bytes())
            valid = isinstance(data, dict) and all(
                isinstance(scores, dict) and all(isinstance(v, (int, float)) for v in scores.values())
                for scores in data.values())
            if not valid:
                raise S2VSError(f"{path}: expected {{query: {{target: score}}}}")
            return {str(q): {str(t): float(s) for t, s in scores.items()} for q, scores in data.items()}
        if path.suffix.lower() in HDF5_SUFFIXES:
            with h5py.File(path, "r") as handle:
                result = {}
                for entry in handle["queries"].values():
                    targets = [t.decode() if isinstance(t, bytes) else str(t) for t in entry["targets"][()]]
                    result[str(entry.attrs["query"])] = dict(zip(targets, entry["scores"][()].tolist()))
                return result
    except (OSError, ValueError, KeyError) as e:
        raise S2VSError(f"{path}: not a similarities file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    raise S2VSError(f"{path}: similarities are .json or .h5 files, not '{path.suffix}'")
