"""`s2vs search` at collection scale: index build, query latency, RAM and recall (issue 7).

A synthetic store of N videos (default 100,000) of 30-120 frames of random unit features, with planted
near-duplicate groups: for each of Q queries (30-60 frames, not in the store), GROUP stored videos hold
the query's frames plus noise of increasing strength, at a random place among random frames. So every
query has more than 100 true neighbours, ordered by their noise, and recall@100 has a real answer.

By default the store holds one feature vector per frame (T x 512, the layout of the published feature
files, which s2vs reads as T x 1 x 512): 100,000 videos of nine regions would be 69 GB of float16. `make
--regions 9` writes extract-features' layout (T x 9 x 512; every region of a planted copy is the query's
plus noise), for a store of a few thousand videos: the cascade's stages after the index score a fixed
number of videos, so their cost is measured there and stage 1's on the 100,000-video store (issue 16).

Stages (each in its own process, so the RAM figure is the search's alone):
    python benchmarks/bench_search.py make   --folder DIR [--videos 100000]
    python benchmarks/bench_search.py build  --folder DIR
    python benchmarks/bench_search.py query  --folder DIR [--exhaustive]
`all` runs the three in turn. Recall@100 compares two-stage search with exhaustive search over the same
scorer: raw Chamfer (features only), since random ViSiL weights would rank these random videos at random.
Each query returns its top `--top-k` (100) and locates the matching segment and every copied part
(matches) in its top `--locate` (20, the CLI's default --top-k); `--rerank` videos (100) are re-ranked after
the frame-level stage. The query stage prints each stage's median time (index, frame descriptors read,
frame-level scores, region features read and re-ranked, located), what the matches cost per query
(`locate_matches`), and `query --no-matches` runs the same without them.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from s2vs_cli.storage.store import StoreIdentity, create_store, write_video

QUERIES = 20
GROUP = 120          # planted copies per query
DIMS = 512
SEED = 0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def queries(regions: int = 1, rng_seed: int = SEED, count: int = QUERIES) -> list[np.ndarray]:
    """The `count` query videos, [T, regions, D] (T x D when `regions` is 1, the one-vector layout)."""
    rng = np.random.default_rng([rng_seed, 1])
    shape = (DIMS,) if regions == 1 else (regions, DIMS)
    return [_unit(rng.standard_normal((int(rng.integers(30, 61)), *shape))).astype(np.float32) for _ in range(count)]


def store_regions(folder: Path) -> int:
    """Regions a frame of the store in `folder` (1: the one-vector layout)."""
    made = folder / "made.json"
    return json.loads(made.read_text())["regions"] if made.is_file() else 1


def make(folder: Path, videos: int, regions: int = 1, groups: int = QUERIES, group: int = GROUP) -> None:
    """Write the store directly (one dataset per video, checksummed, as extract-features writes it), with
    `group` noisy copies of each of `groups` query videos planted (bench_dedup.py plants many small groups)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([SEED, 2])
    planted = {}  # video number -> (query, noise)
    numbers = rng.permutation(videos)[:groups * group]
    for q in range(groups):
        for g in range(group):
            planted[int(numbers[q * group + g])] = (q, 0.2 + 1.3 * g / group)  # noise norm 0.2 .. 1.5
    query_frames = queries(regions, count=groups)
    shape = (DIMS,) if regions == 1 else (regions, DIMS)
    identity = StoreIdentity("synthetic", "synthetic", 1.0, DIMS, dtype="float16")
    started = time.perf_counter()
    with create_store(folder / "store.h5", identity, "bench") as out:
        for number in range(videos):
            frames = int(rng.integers(30, 121))
            x = rng.standard_normal((frames, *shape), dtype=np.float32)
            if number in planted:
                q, noise = planted[number]
                source = query_frames[q]
                frames = max(frames, len(source))
                x = rng.standard_normal((frames, *shape), dtype=np.float32)
                start = int(rng.integers(0, frames - len(source) + 1))
                x[start:start + len(source)] = source * np.sqrt(DIMS) + noise * rng.standard_normal(source.shape)
            data = _unit(x).astype(np.float16)
            write_video(out, f"v{number:07d}", data, {})  # checksummed chunks and digest, as extract-features writes
            if number % 10_000 == 9_999:
                print(f"  {number + 1:,} videos written ({time.perf_counter() - started:.0f} s)", flush=True)
    truth = {q: [f"v{n:07d}" for n, (qq, _) in sorted(planted.items(), key=lambda i: i[1][1]) if qq == q]
             for q in range(groups)}
    (folder / "planted.json").write_text(json.dumps(truth))
    (folder / "made.json").write_text(json.dumps({"videos": videos, "regions": regions}))
    size = (folder / "store.h5").stat().st_size / 1e9
    print(f"store: {videos:,} videos, {size:.2f} GB, written in {time.perf_counter() - started:.0f} s")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def build(folder: Path) -> None:
    from s2vs_cli.storage.index import index_dir_for, open_index

    started = time.perf_counter()
    index, update = open_index(folder / "store.h5", rebuild=True)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in index_dir_for(folder / "store.h5").iterdir()) / 1e9
    print(f"index: {update.action} in {seconds:.0f} s; {len(index):,} videos, {int(index.index.ntotal):,} segments, "
          f"{index.kind}, {size:.2f} GB on disk; peak RSS {peak_rss_gb():.2f} GB")
    started = time.perf_counter()
    _, update = open_index(folder / "store.h5")
    print(f"index check when current: {update.action} in {time.perf_counter() - started:.2f} s")
    (folder / "store.h5").touch()  # a changed stamp: every video's frame count and digest are compared
    started = time.perf_counter()
    _, update = open_index(folder / "store.h5")
    print(f"index check after the store file changed (same videos): {update.action} in "
          f"{time.perf_counter() - started:.1f} s")


class _Timed:
    """A function that also adds up the seconds spent in it (here: locate_matches, inside each search)."""

    def __init__(self, function):
        self.function, self.seconds = function, 0.0

    def __get__(self, instance, owner=None):  # wrapping a method: bind it like a function would be
        return self if instance is None else functools.partial(self, instance)

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def _as_regions(frames: np.ndarray) -> np.ndarray:
    return frames[:, None, :] if frames.ndim == 2 else frames


STAGES = {"index": ("s2vs_cli.storage.index", "VideoIndex.candidate_numbers"),
          "frame descriptors read": ("s2vs_cli.storage.frame_descriptors", "FrameDescriptors.read"),
          "frame-level scores": ("s2vs_cli.jobs.search", "frame_level_scores"),
          "region features read + re-ranked": ("s2vs_cli.jobs.search", "score_prepared"),
          "located": ("s2vs_cli.jobs.search", "Searcher._locate")}


def _time_stages() -> dict[str, _Timed]:
    """Wrap each stage's function (where the search calls it) so its seconds add up per query."""
    import importlib

    timers = {}
    for name, (module_name, attribute) in STAGES.items():
        owner = importlib.import_module(module_name)
        *path, function = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        timers[name] = _Timed(getattr(owner, function))
        setattr(owner, function, timers[name])
    return timers


def query(folder: Path, exhaustive: bool, candidates: int, matches: bool = True, rerank: int = 100,
          top_k: int = 100, locate: int = 20, common_frames: bool = False) -> None:
    from s2vs_cli.scoring import localization
    from s2vs_cli.storage.index import open_index
    from s2vs_cli.scoring.retrieval import VideoScorer
    from s2vs_cli.jobs.search import QueryVideo, Searcher
    from s2vs_cli.models.visil import ViSiL

    timed = _Timed(localization.locate_matches if matches else (lambda *args, **kwargs: []))
    localization.locate_matches = timed  # the search locates hits with scoring/pair.locate_pair: locate calls it
    stages = _time_stages()
    regions = store_regions(folder)

    truth = json.loads((folder / "planted.json").read_text())
    index, _ = open_index(folder / "store.h5")
    common = None
    if common_frames:  # as `s2vs search` leaves them out by default (issue 28); fitted once, then cached
        from s2vs_cli.scoring.common_frames_index import common_frames_of_index

        started = time.perf_counter()
        common = common_frames_of_index(index)
        print(f"common frames: {len(common.prototypes)} prototypes in {time.perf_counter() - started:.1f} s")
    print(f"loaded index ({index.kind}, {len(index):,} videos, {regions} region(s) a frame); "
          f"peak RSS so far {peak_rss_gb():.2f} GB")
    from s2vs_cli.compute import resolve_precision

    # As the CLI's default picks it: bf16 on CPUs with native bf16 (emulated bf16 is many times slower), else fp32.
    precision = resolve_precision("auto", torch.device("cpu"))
    print(f"scoring precision: {precision}; {candidates} candidates, the best {rerank} by frame re-ranked, "
          f"top {top_k} returned, {locate} located")
    torch.manual_seed(0)
    scorers = {"features only": VideoScorer(None, torch.device("cpu"), precision),
               "full ViSiL (random weights)": VideoScorer(ViSiL().eval(), torch.device("cpu"), precision)}
    results = {}
    for name, scorer in scorers.items():
        with Searcher(folder / "store.h5", scorer, index, candidates=candidates, top_k=top_k, locate=locate,
                      rerank=rerank, common=common) as searcher:
            latencies, found, in_matches, parts, per_stage = [], [], [], 0, {s: [] for s in stages}
            counts = None
            for q, frames in enumerate(queries(regions)):
                video = QueryVideo(f"q{q}", _as_regions(frames), np.arange(len(frames), dtype=float), 1.0)
                timed.seconds = 0.0
                for timer in stages.values():
                    timer.seconds = 0.0
                load = os.getloadavg()[0]
                started = time.perf_counter()
                result = searcher.search(video)
                latencies.append(time.perf_counter() - started)
                in_matches.append(timed.seconds)
                for stage, timer in stages.items():
                    per_stage[stage].append(timer.seconds)
                found.append([h.video_id for h in result.hits])
                parts += sum(len(h.matches or ()) for h in result.hits)
                counts = result.stages
            results[name] = found
            planted_recall = np.mean([len(set(f[:100]) & set(truth[str(q)][:100])) / 100 for q, f in enumerate(found)])
            print(f"  {name}: median {np.median(latencies):.3f} s, p95 {np.percentile(latencies, 95):.3f} s per query; "
                  f"planted copies in the top 100: {planted_recall:.3f}; peak RSS {peak_rss_gb():.2f} GB; "
                  f"load {load:.2f}")
            print(f"    videos scored per stage: {counts}")
            print("    per stage (median ms): " + ", ".join(f"{s} {np.median(v) * 1e3:.1f}" for s, v in per_stage.items()))
            print(f"    matches {'on' if matches else 'off'}: {np.median(in_matches) * 1e3:.1f} ms a query in "
                  f"locate_matches (median; {parts / len(latencies):.1f} parts found a query over its located hits)")
    if exhaustive:
        from s2vs_cli.scoring.retrieval import score_prepared

        scorer = scorers["features only"]
        started = time.perf_counter()
        with Searcher(folder / "store.h5", scorer, None) as searcher:
            ids = searcher.store.ids()
            prepared = {f"q{q}": scorer.prepare_query(_as_regions(frames)) for q, frames in enumerate(queries(regions))}
            scores = score_prepared(searcher.store, prepared, ids, scorer)
        recalls = []
        for q in range(QUERIES):
            best = [i for i, _ in sorted(scores[f"q{q}"].items(), key=lambda item: -item[1])[:100]]
            recalls.append(len(set(best) & set(results["features only"][q][:100])) / 100)
        print(f"  exhaustive features-only scoring of {len(ids):,} videos x {QUERIES} queries: "
              f"{time.perf_counter() - started:.0f} s")
        print(f"  recall@100 of the cascade against exhaustive (features only): mean {np.mean(recalls):.3f}, "
              f"min {np.min(recalls):.3f}")


def reads(folder: Path) -> None:
    """Cost of one checked read (what re-ranking pays for each video it scores) against h5py's bare read:
    `store.read` (every attribute) and, where the library has it, `store.read_features` (what scoring reads)."""
    from s2vs_cli.storage.store import FeatureStore

    with FeatureStore(folder / "store.h5") as store:
        stored = sorted(store.ids())
        ids = [stored[n] for n in np.random.default_rng(1).choice(len(stored), min(3000, len(stored)), replace=False)]
        readers = {"store.read": store.read, "h5py alone": lambda video_id: store._file[video_id][()]}
        if hasattr(store, "read_features"):
            readers["store.read_features"] = store.read_features
        for _ in range(3):
            figures = []
            for name, read in readers.items():
                started = time.perf_counter()
                for video_id in ids:
                    read(video_id)
                figures.append(f"{name} {(time.perf_counter() - started) / len(ids) * 1e6:.0f} us")
            print("  " + "; ".join(figures) + " a video")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("make", "build", "query", "reads", "all"))
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--rerank", type=int, default=100, help="query: videos re-ranked after the frame-level stage")
    parser.add_argument("--top-k", type=int, default=100, help="query: results a query")
    parser.add_argument("--locate", type=int, default=20, help="query: hits located (matching segment and parts)")
    parser.add_argument("--regions", type=int, default=1, help="make: regions a frame (9: extract-features' layout)")
    parser.add_argument("--exhaustive", action="store_true")
    parser.add_argument("--no-matches", action="store_true", help="query: locate the best segment only")
    parser.add_argument("--common-frames", action="store_true",
                        help="query: leave the collection's common frames out, as `s2vs search` does by default")
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} torch threads")
    if args.stage == "all":
        for stage in ("make", "build", "query"):
            extra = ["--videos", str(args.videos), "--regions", str(args.regions)] if stage == "make" else (
                ["--exhaustive", "--candidates", str(args.candidates)] if stage == "query" else [])
            subprocess.run([sys.executable, __file__, stage, "--folder", str(args.folder), *extra], check=True)
    elif args.stage == "make":
        make(args.folder, args.videos, args.regions)
    elif args.stage == "build":
        build(args.folder)
    elif args.stage == "reads":
        reads(args.folder)
    else:
        query(args.folder, args.exhaustive, args.candidates, matches=not args.no_matches, rerank=args.rerank,
              top_k=args.top_k, locate=args.locate, common_frames=args.common_frames)


if __name__ == "__main__":
    main()
