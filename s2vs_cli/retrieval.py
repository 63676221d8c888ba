"""Score query videos against a database of stored features, as the original evaluation does.

What `s2vs evaluate` (and `s2vs search`) run. Queries are prepared once (indexed by the network,
kept on the device); the database is read block by block, the next block loading while the current
one is scored, and each database video is indexed once for all queries. Scores follow SPEC §3:
videos under 4 frames are repeated (doubling) when read; a target longer than 2,048 frames is split
into 2,048-frame chunks, the query is compared with each and the scores averaged.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import S2VSError
from .runtime import autocast
from .similarity import ViSiL, chamfer, frame_to_frame_similarities
from .store import FeatureStore

CHUNK_FRAMES = 2048  # the original's chunk of long targets (published numbers depend on it)
MIN_FRAMES = 4       # the comparator's pooling needs 4 frames a side
DATABASE_BLOCK = 256  # database videos read, indexed and scored together
TARGETS_PER_PRODUCT = 64  # targets in one frame-similarity matrix product (bounds its memory)

HDF5_SUFFIXES = (".h5", ".hdf5")

Similarities = dict[str, dict[str, float]]  # {query: {target: score}}, the original tool's layout


def repeat_to_min_frames(features: np.ndarray, min_frames: int = MIN_FRAMES) -> np.ndarray:
    """Concatenate a short video with itself (doubling) until it has at least `min_frames` frames."""
    while 0 < features.shape[0] < min_frames:
        features = np.concatenate([features, features])
    return features


def split_long_target(features: torch.Tensor, chunk_frames: int = CHUNK_FRAMES) -> list[torch.Tensor]:
    """Consecutive chunks of `chunk_frames` frames; a last chunk under 4 frames is repeated to 4 or more."""
    chunks = list(torch.split(features, chunk_frames))
    while chunks[-1].shape[0] < MIN_FRAMES:
        chunks[-1] = torch.cat([chunks[-1], chunks[-1]])
    return chunks


class VideoScorer:
    """Video-to-video similarity with the ViSiL network, or features only (raw Chamfer) without it."""

    def __init__(self, network: ViSiL | None, device: torch.device, precision: str = "fp32",
                 chunk_frames: int = CHUNK_FRAMES):
        self.network, self.device, self.precision, self.chunk_frames = network, device, precision, chunk_frames

    @torch.inference_mode()
    def prepare_query(self, features: np.ndarray) -> torch.Tensor:
        """A query [T, R, D] on the device, indexed by the network (whole: queries are not chunked)."""
        return self._index(torch.from_numpy(np.asarray(features, dtype=np.float32)))

    @torch.inference_mode()
    def prepare_target(self, features: np.ndarray) -> list[torch.Tensor]:
        """A target's chunks on the device, each indexed by the network."""
        whole = torch.from_numpy(np.asarray(features, dtype=np.float32))
        return [self._index(chunk) for chunk in split_long_target(whole, self.chunk_frames)]

    def _index(self, features: torch.Tensor) -> torch.Tensor:
        features = features.to(self.device)
        if self.network is None:
            return features
        with autocast(self.device, self.precision):
            return self.network.index_video(features)

    @torch.inference_mode()
    def score(self, query: torch.Tensor, targets: Sequence[list[torch.Tensor]]) -> np.ndarray:
        """Similarity of one prepared query to each prepared target -> float64 [len(targets)]."""
        chunks = [chunk for target in targets for chunk in target]
        with autocast(self.device, self.precision):
            if self.network is None:  # one product for many targets of any lengths
                values = torch.cat([torch.stack([chamfer(m) for m in frame_to_frame_similarities(query, group)])
                                    for group in _groups(chunks, TARGETS_PER_PRODUCT)])
            else:  # equal lengths batched (never padded: padding changes the comparator's pooling)
                values = self.network.video_similarities(query, chunks)
        values = values.double().cpu().numpy()
        owners = np.repeat(np.arange(len(targets)), [len(target) for target in targets])
        return np.bincount(owners, weights=values, minlength=len(targets)) / np.array([len(t) for t in targets])


@dataclass
class ScoredCollection:
    """Scores of every present query against every present database video, and what was missing."""

    similarities: Similarities
    missing_queries: list[str] = field(default_factory=list)
    missing_database: list[str] = field(default_factory=list)


def score_store(store_path: str, queries: Sequence[str], database: Sequence[str], scorer: VideoScorer,
                progress: Callable[[int, int], None] | None = None, block: int = DATABASE_BLOCK) -> ScoredCollection:
    """Score `queries` against `database`, both read from one feature file; absent ids are reported."""
    with FeatureStore(store_path) as store:
        stored = set(store.ids())
        present_queries = [q for q in dict.fromkeys(queries) if q in stored]
        present_database = [d for d in dict.fromkeys(database) if d in stored]
        result = ScoredCollection({q: {} for q in present_queries},
                                  [q for q in dict.fromkeys(queries) if q not in stored],
                                  [d for d in dict.fromkeys(database) if d not in stored])
        prepared = {q: scorer.prepare_query(_read(store, q)) for q in present_queries}
        blocks = [present_database[i:i + block] for i in range(0, len(present_database), block)]
        done = 0
        # h5py serialises file access, so the prefetch reads while the model runs, never alongside another read.
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(_read_block, store, blocks[0]) if blocks else None
            for index, ids in enumerate(blocks):
                features = pending.result()
                pending = reader.submit(_read_block, store, blocks[index + 1]) if index + 1 < len(blocks) else None
                targets = [scorer.prepare_target(f) for f in features]
                for query, indexed in prepared.items():
                    result.similarities[query].update(zip(ids, scorer.score(indexed, targets).tolist()))
                done += len(ids)
                if progress is not None:
                    progress(done, len(present_database))
    return result


def _groups(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _read(store: FeatureStore, video_id: str) -> np.ndarray:
    return repeat_to_min_frames(store.read(video_id).features)


def _read_block(store: FeatureStore, ids: list[str]) -> list[np.ndarray]:
    return [_read(store, video_id) for video_id in ids]


def save_similarities(path: str | Path, similarities: Similarities) -> None:
    """Write {query: {target: score}}: `.json` (the original tool's layout) or `.h5`/`.hdf5` for large runs.

    The HDF5 layout has one group per query (in a top-level `queries` group, as ids may hold '/')
    with string dataset `targets` and float64 `scores`. Written to a temporary file, then renamed.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        if path.suffix.lower() == ".json":
            temporary.write_text(json.dumps(similarities), encoding="utf-8")
        elif path.suffix.lower() in HDF5_SUFFIXES:
            import h5py

            with h5py.File(temporary, "w") as handle:
                group = handle.create_group("queries")
                for index, (query, scores) in enumerate(similarities.items()):
                    entry = group.create_group(str(index))
                    entry.attrs["query"] = query
                    entry.create_dataset("targets", data=np.array(list(scores), dtype=h5py.string_dtype()))
                    entry.create_dataset("scores", data=np.array(list(scores.values()), dtype=np.float64))
        else:
            raise S2VSError(f"{path}: similarities are saved as .json or .h5, not '{path.suffix}'")
        os.replace(temporary, path)
    except OSError as e:
        raise S2VSError(f"{path}: cannot write similarities ({e.strerror or e})") from None
    finally:
        temporary.unlink(missing_ok=True)


def load_similarities(path: str | Path) -> Similarities:
    """Read what save_similarities wrote (or the original tool's .json); one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise S2VSError(f"{path}: similarities file not found")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            valid = isinstance(data, dict) and all(
                isinstance(scores, dict) and all(isinstance(v, (int, float)) for v in scores.values())
                for scores in data.values())
            if not valid:
                raise S2VSError(f"{path}: expected {{query: {{target: score}}}}")
            return {str(q): {str(t): float(s) for t, s in scores.items()} for q, scores in data.items()}
        if path.suffix.lower() in HDF5_SUFFIXES:
            import h5py

            with h5py.File(path, "r") as handle:
                result = {}
                for entry in handle["queries"].values():
                    targets = [t.decode() if isinstance(t, bytes) else str(t) for t in entry["targets"][()]]
                    result[str(entry.attrs["query"])] = dict(zip(targets, entry["scores"][()].tolist()))
                return result
    except (OSError, ValueError, KeyError) as e:
        raise S2VSError(f"{path}: not a similarities file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    raise S2VSError(f"{path}: similarities are .json or .h5 files, not '{path.suffix}'")
