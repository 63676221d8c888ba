"""The search index at ten million videos (issue 16): what the catalogue costs, what IVF recalls, and
what a full-size index holds in RAM.

Three measurements, each a stage of this script:

`catalogue`: the RAM one video's entry in the index's catalogue costs (its id, frame count and content
digest), at N videos (default 100,000), as Python lists loaded from videos.json (index version 4 and
before) and as numpy arrays (storage/catalogue.py), each loaded in a fresh process so the RSS figure is
the catalogue's alone (and traced by tracemalloc); also the time to save, load and check each, and to
compare a catalogue with a changed store (open_index's job when the store file changed). Ids look like
real ones: 11 to 40 characters of [A-Za-z0-9_-] (a YouTube id is 11, a file name longer); frame counts
30-120 (75 on average, the projection's average); digests 16 hex characters, as
storage/integrity.content_digest writes them, 1% missing.

`ivf`: stage-1 recall and cost of the index kinds at >= 1,048,576 segments, built with the library's own
settings (index._new_index: 4·sqrt(n) lists, NPROBE searched, trained on max(TRAINING_VECTORS, 40 per
list) segments of randomly chosen videos) and searched through the library's own
VideoIndex.candidate_numbers (video score = its best segment's score; 2·count neighbours per query
segment). The size thresholds, PQ_BYTES and PQ_BITS are set per index to force each kind; the coarse
quantiser is trained once (by the first IVF kind) and reused by the others. The data are synthetic
512-d unit segment descriptors with structure rather than isotropic noise:
- an anisotropic spectrum (variance of the i-th principal direction ∝ (1 + i)^-DECAY, in a random
  rotation, so no product-quantiser sub-space is favoured);
- topics (TOPICS clusters, Zipf-popular), each video a perturbation of its topic, each of its segments
  a perturbation of the video along a random walk (neighbouring segments alike);
- queries: QUERIES new videos of 2-8 segments (30-120 frames), each copied into PLANTED stored videos at
  a random place, with noise of increasing strength (cosine to the original about 0.98 down to 0.6).
Per query it compares the index's top 1,000 candidate videos with the exact ranking (every segment
scored in float32): the share of the exact top 1,000 and of the exact top 100 among them, the planted
copies found (and how many an exact search finds), and the time of the candidates call. The library's
flat kind (float16, same k) is measured alongside, to tell what the neighbour count k loses from what
quantisation loses. RAM an entry: faiss's code size plus its 8-byte id, the RSS a fresh process grows
by when it reads the saved index, and the heap the build holds (faiss's lists grow with spare
capacity). NPROBE is swept too: at 10 M videos (51.7 M segments, 28,760 lists) NPROBE = 32 searches
0.11% of the lists, which at 1 M segments (4,096 lists) is NPROBE ≈ 4.6.

`scale`: an index folder of N videos (use 10,000,000) written by the library's own VideoIndex.save, its
IVF-PQ made by _new_index and filled with random codes (RAM and scan cost depend on sizes, not on what
the codes say), then loaded with every check by VideoIndex.load in a fresh process and queried: the
resident memory of index + catalogue + the rest, measured rather than projected.

    python benchmarks/bench_index_scale.py catalogue --folder DIR [--videos 100000]
    python benchmarks/bench_index_scale.py ivf --folder DIR [--segments 1048576]
        [--kinds flat ivf-sq8 ivf-pq64x8 ivf-pq48x6 ivf-pq32x8] [--nprobe 4 8 16 32 64]
    python benchmarks/bench_index_scale.py scale --folder DIR --videos 10000000 [--pq 32x8]

Runs on the CPU (faiss uses every core; set OMP_WAIT_POLICY=PASSIVE on a shared machine). Every timing is
printed with the 1-minute load average beside it. Results also go to DIR/catalogue.json, DIR/ivf.json and
DIR/scale.json. The `scale` stage writes about 2.5 GB (PQ 32 B) into DIR, plus a sparse file.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIMS = 512
SEED = 0
TEN_MILLION = 10_000_000
ID_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", dtype=np.uint8)
TOPICS, DECAY = 2000, 0.5
QUERIES, PLANTED, CANDIDATES = 24, 10, 1000
MORE_CANDIDATES = (2000, 4000)  # ivf: also the exact top 100's share of the index's top 2,000 and 4,000


def load() -> str:
    """The 1-minute load average, printed beside every timing (the machine is shared)."""
    return f"load {os.getloadavg()[0]:.2f}"


def rss() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def heap_in_use() -> int:
    """Bytes malloc has handed out and not had back (glibc's mallinfo2): unlike RSS, it is not hidden by
    memory a freed index left to be reused, and it counts the spare capacity of faiss's growing lists."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                          "fsmblks", "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


# --- catalogue ------------------------------------------------------------------------------------------

def synthetic_catalogue(videos: int) -> tuple[list[str], list[int], list[str | None]]:
    """Ids, frame counts and digests as `read_catalogue` gets them from a store (Python objects)."""
    rng = np.random.default_rng([SEED, 1])
    lengths = rng.integers(11, 41, videos)
    characters = ID_ALPHABET[rng.integers(0, len(ID_ALPHABET), (videos, 40))]
    ids = [row[:n].tobytes().decode() for row, n in zip(characters, lengths)]
    if len(set(ids)) != videos:  # 64^11 possible ids: a repeat means a bug here, not bad luck
        raise RuntimeError("synthetic ids repeat")
    frames = rng.integers(30, 121, videos).tolist()
    digests = [d if keep else None for d, keep in
               zip(rng.bytes(8 * videos).hex(" ", 8).split(" "), rng.random(videos) >= 0.01)]
    return ids, frames, digests


def save_catalogue_json(folder: Path, ids, frames, digests) -> None:
    """Write videos.json as index version 4 did (the lists inside one JSON object)."""
    meta = {"version": 4, "ids": ids, "frames": frames, "digests": digests}
    (folder / "videos.json").write_text(json.dumps(meta), encoding="utf-8")


def save_catalogue_numpy(folder: Path, ids, frames, digests) -> None:
    """Write catalogue.npz as the index does now (from Python lists, as a store is read)."""
    from s2vs_cli.storage.catalogue import VideoCatalogue

    VideoCatalogue.from_lists(ids, frames, digests).save(folder / "catalogue.npz")


def check_lists(ids: list, frames: list, digests: list) -> None:
    """The checks index version 4 made of its catalogue's lists at load (copied from it)."""
    assert len(ids) == len(frames) == len(digests)
    assert all(type(i) is str for i in ids) and len(set(ids)) == len(ids)
    assert all(type(f) is int and f >= 0 for f in frames)
    assert all(d is None or type(d) is str for d in digests)


def load_catalogue(folder: Path, kind: str, trace: bool) -> dict:
    """Run in a fresh process: load one catalogue as `VideoIndex.load` does (json: as version 4 did); what
    stays resident, and how long loading and checking took."""
    import tracemalloc

    from s2vs_cli.storage.catalogue import VideoCatalogue  # imported before measuring, by both

    if trace:  # tracemalloc slows allocation: the traced run is not the timed one
        tracemalloc.start()
    gc.collect()
    before, started = rss(), time.perf_counter()
    if kind == "json":
        meta = json.loads((folder / "videos.json").read_text(encoding="utf-8"))
        catalogue = (list(meta["ids"]), list(meta["frames"]), list(meta["digests"]))
        del meta
        loaded = time.perf_counter() - started
        check_lists(*catalogue)
        videos = len(catalogue[0])
    else:
        catalogue = VideoCatalogue.load(folder / "catalogue.npz")
        loaded = time.perf_counter() - started
        catalogue.check(folder)
        videos = len(catalogue)
    checked = time.perf_counter() - started - loaded
    gc.collect()
    result = {"kind": kind, "videos": videos, "load_s": loaded, "check_s": checked, "rss": rss() - before,
              "load": os.getloadavg()[0]}
    if trace:
        result["traced"], result["traced_peak"] = tracemalloc.get_traced_memory()
    return result


def traced(function, *args) -> tuple:
    """`function(*args)`, its seconds, and the peak bytes it allocates (tracemalloc: Python and numpy), from a
    second run (tracing slows allocation)."""
    import tracemalloc

    started = time.perf_counter()
    function(*args)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    result = function(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def compare_lists(before: tuple, now: tuple) -> tuple:
    """What open_index did in version 4 when the store's stamp changed: two signature dicts compared."""
    old = {i: (f, d) for i, f, d in zip(*before)}
    new = {i: (f, d) for i, f, d in zip(*now)}
    changed = [i for i, sig in old.items() if new.get(i) != sig]
    return changed, [i for i in now[0] if i not in old]


def catalogue_stage(folder: Path, videos: int) -> None:
    from s2vs_cli.storage.catalogue import VideoCatalogue

    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ids, frames, digests = synthetic_catalogue(videos)
    print(f"{videos:,} synthetic videos in {time.perf_counter() - started:.1f} s ({load()}); "
          f"mean id length {np.mean([len(i) for i in ids]):.1f} characters")
    saves = {"json": traced(save_catalogue_json, folder, ids, frames, digests),
             "numpy": traced(save_catalogue_numpy, folder, ids, frames, digests)}
    sizes = {"json": (folder / "videos.json").stat().st_size, "numpy": (folder / "catalogue.npz").stat().st_size}
    # The store after a change: one digest differs, 1% more videos. What open_index compares.
    grown = synthetic_catalogue(videos + videos // 100)
    now = (ids + grown[0][videos:], frames + grown[1][videos:], digests[:-1] + ["0" * 16] + grown[2][videos:])
    (changed, new), list_s, list_peak = traced(compare_lists, (ids, frames, digests), now)
    assert len(changed) == 1 and len(new) == videos // 100
    mine, theirs = VideoCatalogue.from_lists(ids, frames, digests), VideoCatalogue.from_lists(*now)
    (gone, altered, added), array_s, array_peak = traced(mine.compare, theirs)
    assert len(gone) == 0 and len(altered) == 1 and len(added) == videos // 100
    print(f"store changed, signatures compared: lists (version 4) {list_s:.2f} s, peak {list_peak / 1e6:.0f} MB; "
          f"arrays {array_s:.2f} s, peak {array_peak / 1e6:.0f} MB ({load()})")
    del ids, frames, digests, grown, now, mine, theirs
    results = []
    for kind in ("json", "numpy"):
        for trace in (False, True):
            out = subprocess.run([sys.executable, __file__, "_load-catalogue", "--folder", str(folder), "--kind", kind,
                                  *(["--trace"] if trace else [])], check=True, capture_output=True, text=True)
            measured = json.loads(out.stdout.splitlines()[-1])
            results.append(measured | {"save_s": saves[kind][1], "save_peak": saves[kind][2], "disk": sizes[kind]})
    print("| catalogue | RSS a video | traced a video | 10 M projected (RSS) | load + check (traced peak a video) | "
          "of which check | save (traced peak a video) | on disk a video |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for plain, trace in zip(results[::2], results[1::2]):
        per_video = plain["rss"] / videos
        print(f"| {plain['kind']} | {per_video:.0f} B | {trace['traced'] / videos:.0f} B | "
              f"{per_video * TEN_MILLION / 1e9:.2f} GB | {plain['load_s'] + plain['check_s']:.2f} s "
              f"({trace['traced_peak'] / videos:.0f} B) | "
              f"{plain['check_s']:.2f} s | {plain['save_s']:.2f} s ({plain['save_peak'] / videos:.0f} B) | "
              f"{plain['disk'] / videos:.0f} B | load {plain['load']:.2f}")
    (folder / "catalogue.json").write_text(json.dumps(results, indent=1))


# --- ivf ------------------------------------------------------------------------------------------------

def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Generator:
    """Structured synthetic segment descriptors (see the module's docstring)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        rotation, _ = np.linalg.qr(self.rng.standard_normal((DIMS, DIMS)))
        self.basis = ((1.0 + np.arange(DIMS)) ** (-DECAY / 2))[:, None] * rotation.T  # rows: scaled directions
        self.topics = unit(self.shaped(TOPICS))
        popularity = 1.0 / (np.arange(TOPICS) + 10.0)
        self.popularity = popularity / popularity.sum()

    def shaped(self, count: int) -> np.ndarray:
        """`count` random directions with the spectrum, of unit length on average."""
        x = self.rng.standard_normal((count, DIMS), dtype=np.float32) @ self.basis.astype(np.float32)
        return x / np.sqrt((self.basis ** 2).sum())

    def videos(self, segments: np.ndarray) -> np.ndarray:
        """Descriptors of videos of `segments` segments each, concatenated in video order (float32)."""
        topic = self.rng.choice(TOPICS, len(segments), p=self.popularity)
        centres = unit(self.topics[topic] + 0.8 * unit(self.shaped(len(segments))))
        owner = np.repeat(np.arange(len(segments)), segments)
        position = np.arange(len(owner)) - np.repeat(np.cumsum(segments) - segments, segments)
        walk = np.empty((len(owner), DIMS), dtype=np.float32)
        for j in range(int(segments.max())):  # a random walk along each video: neighbouring segments alike
            here = np.flatnonzero(position == j)
            step = unit(self.shaped(len(here)))
            walk[here] = step if j == 0 else 0.7 * walk[here - 1] + math.sqrt(1 - 0.7 ** 2) * step
        return unit(centres[owner] + 0.7 * walk).astype(np.float32)

    def copy(self, source: np.ndarray, noise: float) -> np.ndarray:
        """A noisy copy of segments: cosine to the original about 1 / sqrt(1 + noise^2)."""
        return unit(source + noise * unit(self.rng.standard_normal(source.shape))).astype(np.float32)


def make_data(segments: int) -> dict:
    """Stored descriptors, their videos, queries and the planted copies of each query."""
    generator = Generator(SEED)
    frames = generator.rng.integers(30, 121, segments)  # more videos than needed, then cut at `segments`
    per_video = -(-frames // 16)
    videos = int(np.searchsorted(np.cumsum(per_video), segments)) + 1
    per_video = per_video[:videos]
    x = np.concatenate([generator.videos(per_video[s:s + 65536]) for s in range(0, videos, 65536)])
    starts = np.concatenate([[0], np.cumsum(per_video)[:-1]])
    queries = [generator.videos(generator.rng.integers(2, 9, 1)) for _ in range(QUERIES)]
    planted = generator.rng.permutation(videos)[:QUERIES * PLANTED].reshape(QUERIES, PLANTED)
    for query, targets in zip(queries, planted):
        for noise, video in zip(np.linspace(0.2, 1.3, PLANTED), targets):
            length = min(len(query), per_video[video])
            offset = starts[video] + generator.rng.integers(0, per_video[video] - length + 1)
            x[offset:offset + length] = generator.copy(query[:length], noise)
    return {"x": x, "per_video": per_video, "starts": starts, "queries": queries, "planted": planted}


def exact_ranking(data: dict, query: np.ndarray) -> np.ndarray:
    """Every video's score (its best segment's inner product with any query segment), exactly."""
    best = np.concatenate([(data["x"][s:s + 262144] @ query.T).max(1) for s in range(0, len(data["x"]), 262144)])
    return np.maximum.reduceat(best, data["starts"])


def video_index(index, data: dict):
    """The library's VideoIndex over `index` (already filled with data["x"] in order)."""
    from s2vs_cli.storage.index import StoreStamp, VideoCatalogue, VideoIndex

    videos = len(data["per_video"])
    catalogue = VideoCatalogue.from_lists([f"v{n}" for n in range(videos)], (data["per_video"] * 16).tolist(),
                                          [None] * videos)
    return VideoIndex(index, catalogue, StoreStamp(0, 0, 0), DIMS)


def measure_queries(searchable, data: dict, truth: list, nprobe: int) -> dict:
    """Recall of the exact top 1,000 / top 100 in the index's top 1,000, planted copies found, query seconds."""
    import s2vs_cli.storage.index as index_module

    index_module.NPROBE = nprobe
    searchable.candidate_numbers(data["queries"][0], CANDIDATES)  # warm-up
    seconds, top1000, top100, planted = [], [], [], []
    widened: dict[int, list] = {more: [] for more in MORE_CANDIDATES}
    for query, (order, _), copies in zip(data["queries"], truth, data["planted"]):
        started = time.perf_counter()
        found = searchable.candidate_numbers(query, CANDIDATES)
        seconds.append(time.perf_counter() - started)
        numbers = {number for number, _ in found}
        top1000.append(len(numbers.intersection(order[:1000].tolist())) / 1000)
        top100.append(len(numbers.intersection(order[:100].tolist())) / 100)
        planted.append(len(numbers.intersection(copies.tolist())))
        for more in MORE_CANDIDATES:  # how many candidates the next stage would need to see the exact top 100
            started = time.perf_counter()
            found = {number for number, _ in searchable.candidate_numbers(query, more)}
            widened[more].append((len(found.intersection(order[:100].tolist())) / 100, time.perf_counter() - started))
    return {"nprobe": nprobe, "recall1000": float(np.mean(top1000)), "recall1000_min": float(np.min(top1000)),
            "recall100": float(np.mean(top100)), "recall100_min": float(np.min(top100)),
            "planted": int(np.sum(planted)), "query_s": float(np.median(seconds)),
            "query_p95_s": float(np.percentile(seconds, 95)), "load": os.getloadavg()[0],
            "recall100_in": {more: float(np.mean([r for r, _ in got])) for more, got in widened.items()},
            "query_s_in": {more: float(np.median([t for _, t in got])) for more, got in widened.items()}}


def training_sample(data: dict, count: int) -> np.ndarray:
    """Segments of randomly chosen videos, about `count` of them, as index._training_sample picks them."""
    order = np.random.default_rng(0).permutation(len(data["per_video"]))
    chosen = order[:int(np.searchsorted(np.cumsum(data["per_video"][order]), count)) + 1]
    return np.concatenate([data["x"][data["starts"][v]:data["starts"][v] + data["per_video"][v]] for v in chosen])


def build(kind: str, data: dict, pq: tuple[int, int], centroids: np.ndarray | None) -> tuple:
    """An index of `kind` made by the library's _new_index, trained (reusing `centroids` for the coarse
    quantiser when given: the same k-means on the same sample) and filled; with what it cost."""
    import s2vs_cli.storage.index as index_module

    n = len(data["x"])
    index_module.FLAT_MAX = n if kind == "flat" else n - 1
    index_module.SQ_MAX = n if kind == "ivf-sq8" else n - 1
    index_module.PQ_BYTES, index_module.PQ_BITS = pq
    assert index_module.index_kind(n) == kind
    index = index_module._new_index(n, DIMS)
    costs = {"kind": kind, "pq": pq if kind == "ivf-pq" else None, "entries": n}
    if not index.is_trained:
        sample = training_sample(data, max(index_module.TRAINING_VECTORS, 40 * index.nlist))
        if centroids is not None:
            index.quantizer.add(centroids)  # trained: faiss then trains only the codes' quantiser
        started = time.perf_counter()
        index.train(sample)
        costs |= {"lists": index.nlist, "training_vectors": len(sample), "train_s": time.perf_counter() - started,
                  "coarse_trained": centroids is None, "train_load": os.getloadavg()[0]}
    before, started = heap_in_use(), time.perf_counter()
    for start in range(0, n, 65536):  # in blocks, as _add_videos adds READ_BLOCK videos at a time
        index.add(data["x"][start:start + 65536])
    costs |= {"add_s": time.perf_counter() - started, "add_load": os.getloadavg()[0],
              "add_heap": heap_in_use() - before,
              "code_size": index.sa_code_size() if kind == "flat" else index.code_size}
    return index, costs


def load_index(path: Path) -> dict:
    """Run in a fresh process: the RSS that reading a saved index adds, and the time it takes."""
    import faiss

    before, started = rss(), time.perf_counter()
    index = faiss.read_index(str(path))
    return {"read_s": time.perf_counter() - started, "read_rss": rss() - before, "ntotal": index.ntotal,
            "load": os.getloadavg()[0]}


def ivf_stage(folder: Path, segments: int, kinds: list[str], nprobes: list[int]) -> None:
    """Every index of `kinds` ("flat", "ivf-sq8", "ivf-pqBYTESxBITS") built, measured and discarded in turn."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    started = time.perf_counter()
    data = make_data(segments)
    n, videos = len(data["x"]), len(data["per_video"])
    print(f"data: {n:,} segments of {videos:,} videos, {QUERIES} queries x {PLANTED} planted copies, made in "
          f"{time.perf_counter() - started:.0f} s ({load()})")
    started = time.perf_counter()
    truth = []
    for query in data["queries"]:
        scores = exact_ranking(data, query)
        truth.append((np.argsort(-scores, kind="stable"), scores))
    in_exact = sum(len(set(order[:1000].tolist()) & set(c.tolist())) for (order, _), c in zip(truth, data["planted"]))
    print(f"exact rankings in {time.perf_counter() - started:.1f} s; planted copies in the exact top 1,000: "
          f"{in_exact} of {QUERIES * PLANTED}; exact top-1 score median {np.median([s.max() for _, s in truth]):.3f}, "
          f"1,000th {np.median([np.sort(s)[-1000] for _, s in truth]):.3f}")
    rows, centroids = [], None
    for name in kinds:
        kind = "ivf-pq" if name.startswith("ivf-pq") else name
        pq = tuple(int(part) for part in name[6:].split("x")) if kind == "ivf-pq" else (0, 8)
        index, costs = build(kind, data, pq, centroids)
        if kind != "flat" and centroids is None:  # the first IVF's coarse quantiser serves the others
            centroids = index.quantizer.reconstruct_n(0, index.nlist)
        path = folder / f"{name}.faiss"
        faiss.write_index(index, str(path))
        out = subprocess.run([sys.executable, __file__, "_load-index", "--folder", str(path)], check=True,
                             capture_output=True, text=True)
        costs |= json.loads(out.stdout.splitlines()[-1]) | {"disk": path.stat().st_size, "name": name}
        searchable = video_index(index, data)
        for nprobe in (nprobes if kind != "flat" else [0]):
            rows.append(costs | measure_queries(searchable, data, truth, nprobe))
            report(rows[-1])
        del index, searchable
        path.unlink()
        gc.collect()
    (folder / "ivf.json").write_text(json.dumps(rows, indent=1))


def report(row: dict) -> None:
    """One line per (index, nprobe): recall, planted copies, query time, build cost, bytes an entry."""
    per_entry = row["read_rss"] / row["entries"]
    train = f"train {row['train_s']:.0f} s (load {row['train_load']:.2f}), " if "train_s" in row else ""
    print(f"{row['name']:>9} nprobe {row['nprobe']:>3}: recall of exact top-1000 {row['recall1000']:.3f} "
          f"(min {row['recall1000_min']:.3f}), of exact top-100 {row['recall100']:.3f} "
          f"(min {row['recall100_min']:.3f}), in its top "
          + ", ".join(f"{more}: {recall:.3f} ({row['query_s_in'][more] * 1e3:.0f} ms)"
                      for more, recall in row["recall100_in"].items()) + "; "
          f"planted {row['planted']}/{QUERIES * PLANTED}; query {row['query_s'] * 1e3:.0f} ms median, p95 "
          f"{row['query_p95_s'] * 1e3:.0f} ms (load {row['load']:.2f}) | {train}add {row['add_s']:.0f} s "
          f"(load {row['add_load']:.2f}); code {row['code_size']} B + 8 B id; read RSS {per_entry:.1f} B an entry, "
          f"{row['read_s']:.1f} s; built {row['add_heap'] / row['entries']:.1f} B an entry (heap)", flush=True)


# --- scale ----------------------------------------------------------------------------------------------

def arrays_catalogue(videos: int, rng: np.random.Generator):
    """A catalogue like synthetic_catalogue's, made directly as arrays (no Python object per video)."""
    from s2vs_cli.storage.catalogue import HEX_DIGEST, NO_DIGEST, VideoCatalogue

    offsets = np.zeros(videos + 1, np.int64)
    np.cumsum(rng.integers(11, 41, videos), out=offsets[1:])
    kinds = np.where(rng.random(videos) >= 0.01, HEX_DIGEST, NO_DIGEST).astype(np.uint8)
    digests = rng.integers(0, 2 ** 64 - 1, videos, dtype=np.uint64, endpoint=True) * (kinds == HEX_DIGEST)
    return VideoCatalogue(ID_ALPHABET[rng.integers(0, len(ID_ALPHABET), offsets[-1])], offsets,
                          rng.integers(30, 121, videos).astype(np.int32), digests, kinds)


def make_full_index(folder: Path, videos: int, pq: tuple[int, int]) -> None:
    """An index folder of `videos` videos written by the library's VideoIndex.save, its IVF-PQ index made by
    _new_index and filled with random codes and random (trained-looking) quantisers: what loading and
    scanning cost depends on the sizes and layout, not on what the codes say. The frame descriptors' data
    file is sparse (only its size is checked at load; nothing reads it here)."""
    import faiss

    import s2vs_cli.storage.index as index_module
    from s2vs_cli.storage.frame_descriptors import DATA_FILE, FrameDescriptors

    rng = np.random.default_rng([SEED, 3])
    started = time.perf_counter()
    catalogue = arrays_catalogue(videos, rng)
    n = int((-(-catalogue.frames.astype(np.int64) // 16)).sum())
    index_module.FLAT_MAX, index_module.SQ_MAX = 0, 0
    index_module.PQ_BYTES, index_module.PQ_BITS = pq
    index = index_module._new_index(n, DIMS)
    index.quantizer.add(unit(rng.standard_normal((index.nlist, DIMS), dtype=np.float32)))
    codewords = 0.1 * rng.standard_normal(index.pq.M * index.pq.ksub * index.pq.dsub, dtype=np.float32)
    faiss.copy_array_to_vector(codewords, index.pq.centroids)
    index.is_trained = True
    lists = rng.integers(0, index.nlist, n)
    order = np.argsort(lists, kind="stable")  # entry numbers, list by list
    bounds = np.searchsorted(lists[order], np.arange(index.nlist + 1))
    del lists
    for number in range(index.nlist):  # each list filled at once: no spare capacity, as after a load
        ids = np.ascontiguousarray(order[bounds[number]:bounds[number + 1]])
        codes = np.frombuffer(rng.bytes(len(ids) * index.code_size), np.uint8)
        index.invlists.add_entries(number, len(ids), faiss.swig_ptr(ids), faiss.swig_ptr(codes))
    index.ntotal = n
    del order
    folder.mkdir(parents=True, exist_ok=True)
    frames = FrameDescriptors(folder, DIMS, catalogue.frames.astype(np.int64), np.zeros(videos, np.uint32))
    with (folder / DATA_FILE).open("wb") as data:
        data.truncate(frames.nbytes)
    index_module.VideoIndex(index, catalogue, index_module.StoreStamp(0, 0, 0), DIMS, frames).save(folder)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.name != DATA_FILE)
    print(f"made {videos:,} videos, {n:,} entries, {index.nlist:,} lists, PQ {pq[0]} B ({pq[1]}-bit codes) in "
          f"{time.perf_counter() - started:.0f} s ({load()}); {size / 1e9:.2f} GB on disk besides the frame "
          f"descriptors' {frames.nbytes / 1e9:.0f} GB (sparse here)", flush=True)


def load_full_index(folder: Path) -> dict:
    """Run in a fresh process: VideoIndex.load of the folder (every check), then queries through the library's
    candidate_numbers; what stays resident, what each part holds, and the times."""
    import resource

    import faiss

    import s2vs_cli.storage.index as index_module

    before, started = rss(), time.perf_counter()
    index = index_module.VideoIndex.load(folder)
    loaded_s, loaded = time.perf_counter() - started, rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    invlists = faiss.extract_index_ivf(index.index).invlists
    sizes = np.array([invlists.list_size(number) for number in range(invlists.nlist)], dtype=np.int64)
    parts = {"faiss codes + ids": int(sizes.sum()) * (invlists.code_size + 8),
             "coarse centroids": index.index.nlist * index.dims * 4,
             "entry starts (video -> first entry)": index.starts.nbytes, "catalogue": index.catalogue.nbytes,
             "frame descriptor offsets + CRCs": index.frames.offsets.nbytes + index.frames.crcs.nbytes}
    rng = np.random.default_rng([SEED, 4])
    queries = [unit(rng.standard_normal((int(rng.integers(2, 9)), DIMS), dtype=np.float32)) for _ in range(QUERIES)]
    seconds: dict[int, list[float]] = {count: [] for count in (CANDIDATES, *MORE_CANDIDATES)}
    for count, times in seconds.items():
        for query in queries:
            started = time.perf_counter()
            index.candidate_numbers(query, count)
            times.append(time.perf_counter() - started)
    return {"videos": len(index), "entries": int(index.index.ntotal), "load_s": loaded_s, "rss": loaded - before,
            "peak_rss": peak - before, "rss_after_queries": rss() - before, "parts": parts,
            "query_s": {count: float(np.median(times)) for count, times in seconds.items()},
            "query_p95_s": {count: float(np.percentile(times, 95)) for count, times in seconds.items()},
            "nprobe": index_module.NPROBE, "load": os.getloadavg()[0]}


def scale_stage(folder: Path, videos: int, pq: tuple[int, int]) -> None:
    make_full_index(folder, videos, pq)
    out = subprocess.run([sys.executable, __file__, "_load-full", "--folder", str(folder)], check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.splitlines()[-1])
    print(f"VideoIndex.load in a fresh process: {result['load_s']:.1f} s ({result['load']:.2f} load); resident "
          f"{result['rss'] / 1e9:.2f} GB after loading, {result['rss_after_queries'] / 1e9:.2f} GB after "
          f"{QUERIES} queries, peak {result['peak_rss'] / 1e9:.2f} GB while loading")
    for name, size in result["parts"].items():
        print(f"  {name}: {size / 1e9:.3f} GB ({size / result['entries']:.1f} B an entry, "
              f"{size / result['videos']:.1f} B a video)")
    print(f"  sum of the parts {sum(result['parts'].values()) / 1e9:.2f} GB")
    for count, median in result["query_s"].items():
        print(f"query (stage 1 only: candidate_numbers, {count} candidates, NPROBE {result['nprobe']}): "
              f"{median * 1e3:.0f} ms median, p95 {result['query_p95_s'][count] * 1e3:.0f} ms")
    (folder / "scale.json").write_text(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("catalogue", "ivf", "scale", "_load-catalogue", "_load-index", "_load-full"),
                        help="the stages starting with _ run in a child process of the others")
    parser.add_argument("--folder", type=Path, required=True, help="where data and results go")
    parser.add_argument("--videos", type=int, default=100_000, help="catalogue, scale: videos")
    parser.add_argument("--segments", type=int, default=1_048_576, help="ivf: segment entries in the index")
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf-sq8", "ivf-pq64x8", "ivf-pq48x6", "ivf-pq32x8"],
                        help="ivf: indexes to measure; ivf-pqBxN: B bytes an entry, N-bit codes (B*8/N sub-quantisers)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64], help="ivf: lists searched")
    parser.add_argument("--pq", default="32x8", help="scale: the PQ code, BYTESxBITS")
    parser.add_argument("--kind", choices=("json", "numpy"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "catalogue":
        catalogue_stage(args.folder, args.videos)
    elif args.stage == "ivf":
        ivf_stage(args.folder, args.segments, args.kinds, args.nprobe)
    elif args.stage == "scale":
        scale_stage(args.folder, args.videos, tuple(int(part) for part in args.pq.split("x")))
    elif args.stage == "_load-full":
        print(json.dumps(load_full_index(args.folder)))
    elif args.stage == "_load-catalogue":
        print(json.dumps(load_catalogue(args.folder, args.kind, args.trace)))
    else:
        print(json.dumps(load_index(args.folder)))


if __name__ == "__main__":
    main()
