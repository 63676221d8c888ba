"""The inverted lists of dedup's self-join (scoring/self_join.py), kept beside the index and extended as it grows.

Above EXACT_SEGMENTS a segment is compared only with the segments of its `probes` nearest lists. The lists are
made so that appending videos never changes them, so that an increment (`dedup --previous`) searches exactly
the lists a full run would (index_prefix.py):
- the index's segments are in epoch e (2^e >= segments): 2^e / list_size lists (list_size / 2 to list_size
  segments each), their centroids trained (k-means) on training_per_list a list drawn, seeded, from the
  segments below 2^(e-1), which appending within the epoch never changes;
- each segment's `probes` nearest centroids (inner product, nearest first; the first is its list), worked out
  in blocks of PROBE_BLOCK segments counted from the first, so a block holds the same segments however the
  collection grew.
FILE (join_lists.npz) keeps the centroids, the probes and the prefix stamp of the videos they cover: a grown
index of the same epoch that starts with those videos gets its new segments' probes only (from the first
incomplete block); another epoch, other first videos or more probes than kept train anew.
Lists hold the segments' float16 vectors as they are (not residuals), so a score is the product itself.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_with
from ..progress import SILENT, Progress
from ..storage.index_prefix import epoch, grown_from, prefix_stamp

FILE = "join_lists.npz"
VERSION = 1
PROBE_BLOCK = 8192     # segments whose probes are worked out at a time (a fixed grid: see the docstring)
ADD_BLOCK = 65_536     # segments' codes gathered at a time while the lists are filled
SEED = 0


@dataclass
class JoinLists:
    """Centroids of the lists and each segment's nearest lists, for the index whose first videos `stamp` names."""

    centroids: np.ndarray  # float32 [lists, D]
    probes: np.ndarray     # int32 [segments, P]: each segment's P nearest lists, nearest first
    stamp: dict            # prefix_stamp of the videos covered, and the settings (`settings` below)

    def searcher(self, vectors: np.ndarray, rows: np.ndarray, probes: int):
        """A faiss index of the segments `rows` (ids: their numbers) of `vectors` (float16 [segments, D]), each in
        its list, searched with `search` over `probes` lists a query."""
        import faiss  # late: faiss loads in a second

        dims, lists = vectors.shape[1], len(self.centroids)
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dims), dims, lists, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False  # the vectors themselves: a score is their product
        index.quantizer.add(self.centroids)
        index.is_trained = True
        index.nprobe = probes
        index.parallel_mode = 3  # search_preassigned splits its queries among the threads (0: one thread)
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[np.argsort(self.probes[rows, 0], kind="stable")]  # by list, each list in entry order
        for start in range(0, len(rows), ADD_BLOCK):
            chunk = rows[start:start + ADD_BLOCK]
            codes = np.ascontiguousarray(vectors[chunk]).view(np.uint8)  # float16 is the fp16 quantiser's code
            assigned = self.probes[chunk, 0]
            cuts = np.flatnonzero(np.diff(assigned)) + 1
            for first, end in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(chunk)]])):
                ids, code = np.ascontiguousarray(chunk[first:end]), np.ascontiguousarray(codes[first:end])
                # swig_ptr holds no reference: `ids` and `code` must live until add_entries returns
                index.invlists.add_entries(int(assigned[first]), len(ids), faiss.swig_ptr(ids), faiss.swig_ptr(code))
        index.ntotal = len(rows)
        return index

    def search(self, searcher, vectors: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` best of `searcher`'s segments for the segments `rows` of `vectors`, in their own nearest lists:
        (scores, entry numbers; -1 where fewer were found) [len(rows), k]."""
        queries = np.ascontiguousarray(vectors[rows], dtype=np.float32)
        nearest = np.ascontiguousarray(self.probes[rows, :searcher.nprobe], dtype=np.int64)
        return searcher.search_preassigned(queries, k, nearest, np.zeros(nearest.shape, dtype=np.float32))


def settings(lists: int, training_per_list: int) -> dict:
    """What, besides the videos covered, a kept JoinLists must have been made with."""
    return {"version": VERSION, "lists": lists, "training_per_list": training_per_list, "seed": SEED}


def join_lists_of_index(index, vectors: np.ndarray, probes: int, list_size: int, training_per_list: int,
                        progress: Progress = SILENT) -> JoinLists:
    """The lists of `index`'s segments (`vectors`, float16 [segments, D]) with `probes` nearest lists a segment:
    read from FILE in its folder (extended with new videos' segments), else trained; saved back when changed."""
    segments = len(vectors)
    era = epoch(segments)
    lists = max(1, min((1 << era) // list_size, segments))
    wanted = settings(lists, training_per_list)
    path = Path(index.folder) / FILE if index.folder is not None else None
    kept = _load(path) if path is not None else None
    if kept is not None and all(kept.stamp.get(key) == value for key, value in wanted.items()) and \
            kept.probes.shape[1] >= probes and kept.stamp.get("epoch") == era and \
            grown_from(index, kept.stamp["prefix"]):
        covered = kept.stamp["prefix"]["segments"]
        if covered == segments:
            return kept
        start = covered // PROBE_BLOCK * PROBE_BLOCK  # the first incomplete block, worked out again whole
        progress.stage("self-join: new segments' lists", total=segments - start, unit="segments")
        found = _nearest_lists(kept.centroids, vectors, start, kept.probes.shape[1], progress)
        joined = JoinLists(kept.centroids, np.concatenate([kept.probes[:start], found]), kept.stamp)
    else:
        progress.stage("self-join: training the inverted lists", unit="segments")
        basis = 1 << (era - 1) if segments > 1 else segments  # the segments that were there at half the epoch
        chosen = np.sort(np.random.default_rng(SEED).permutation(basis)[:min(basis, training_per_list * lists)])
        centroids = _train(np.ascontiguousarray(vectors[chosen], dtype=np.float32), lists)
        progress.stage("self-join: each segment's nearest lists", total=segments, unit="segments")
        joined = JoinLists(centroids, _nearest_lists(centroids, vectors, 0, probes, progress), {})
    joined.stamp = wanted | {"epoch": era, "prefix": prefix_stamp(index)}
    if path is not None:
        try:
            _save(joined, path)
        except OSError:  # a cache: a folder that cannot take it trains again next time
            pass
    return joined


def _train(sample: np.ndarray, lists: int) -> np.ndarray:
    """k-means centroids (float32 [lists, D]) of `sample`, as faiss trains an inverted-list index's quantiser."""
    import faiss  # late: as above

    dims = sample.shape[1]
    trainer = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, lists, faiss.METRIC_INNER_PRODUCT)
    trainer.cp.min_points_per_centroid = 1  # training_per_list a list is enough to place the lists
    trainer.train(sample)
    return trainer.quantizer.reconstruct_n(0, lists)


def _nearest_lists(centroids: np.ndarray, vectors: np.ndarray, start: int, probes: int,
                   progress: Progress) -> np.ndarray:
    """int32 [segments - start, probes]: the nearest lists of the segments from `start` (a multiple of PROBE_BLOCK)."""
    import faiss  # late: as above

    quantiser = faiss.IndexFlatIP(centroids.shape[1])
    quantiser.add(centroids)
    probes = min(probes, len(centroids))
    out = np.empty((len(vectors) - start, probes), dtype=np.int32)
    for first in range(start, len(vectors), PROBE_BLOCK):
        block = np.ascontiguousarray(vectors[first:first + PROBE_BLOCK], dtype=np.float32)
        out[first - start:first - start + len(block)] = quantiser.search(block, probes)[1]
        progress.update(first + len(block) - start)
    return out


def _save(lists: JoinLists, path: Path) -> None:
    """Write `lists` to `path` atomically."""
    def write(temporary: Path) -> None:
        with temporary.open("wb") as out:  # a file object: np.savez would add ".npz" to a temporary name
            np.savez(out, centroids=lists.centroids, probes=lists.probes,
                     stamp=np.frombuffer(json.dumps(lists.stamp).encode(), dtype=np.uint8))

    write_with(path, write)


def _load(path: Path) -> JoinLists | None:
    """What `_save` wrote, or None when it is missing, damaged or not sound (a cache: any doubt trains again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            lists = JoinLists(saved["centroids"], saved["probes"], json.loads(saved["stamp"].tobytes().decode()))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
    prefix = lists.stamp.get("prefix") if isinstance(lists.stamp, dict) else None
    sound = isinstance(prefix, dict) and lists.centroids.ndim == 2 and lists.probes.ndim == 2 and \
        lists.probes.dtype == np.int32 and len(lists.probes) == prefix.get("segments") and \
        (not lists.probes.size or (0 <= lists.probes.min() and lists.probes.max() < len(lists.centroids)))
    return lists if sound else None
