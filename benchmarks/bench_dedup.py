"""Stages 1-2 of `s2vs dedup` at collection scale: the batched self-join (scoring/self_join.py), issue 28.

The store is bench_search.py's (T x 512 float16 videos of random unit frames), with many small planted
groups: `--groups` sources, `--group` noisy copies of each (noise 0.2 .. 1.5 times the frame's norm, the copy
among random frames at a random place), so the planted pairs are every pair inside a group.

    python benchmarks/bench_dedup.py make   --folder DIR [--videos 100000] [--groups N] [--group 5]
    python benchmarks/bench_dedup.py build  --folder DIR
    python benchmarks/bench_dedup.py join   --folder DIR [--neighbours 100] [--set NAME=VALUE ...]
    python benchmarks/bench_dedup.py stage1 --folder DIR [--every 50] [--set NAME=VALUE ...]
    python benchmarks/bench_dedup.py memory --folder DIR

`join` runs stages 1-2 and prints seconds per stage, peak RSS and pair counts, then the recall of the planted
pairs: the reference is exhaustive features-only scoring of every planted pair (frame Chamfer of the stored
features, mean of both directions), and a planted pair counts if that score reaches min_frame_level; recall
is the share of those the join returns. It also scores every pair among `--unrelated` random unplanted
videos exhaustively: the highest is how close unrelated pairs come to the floor (and any above it must be in
the join's output too). `stage1` compares the join's candidates with an exact scan for every `--every`-th
video. `memory` runs stage 2 alone on the pairs (v, v + 1), so that every tile holds two whole ranges: its
peak RSS is stage 2's bound. `--set` changes a module constant of self_join (e.g. JOIN_NPROBE=8,
LIST_SIZE=512, EXACT_SEGMENTS=0).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads cost 10x on a shared machine
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import bench_search  # noqa: E402  (the store maker and the index build: reused, not copied)

from s2vs_cli.progress import Progress  # noqa: E402


class Printed(Progress):
    """Prints each stage and about every 10% of it, with the time so far and an estimate of what is left."""

    def stage(self, name: str, total: int | None = None, unit: str = "items") -> None:
        self.name, self.unit, self.started, self.shown = name, unit, time.perf_counter(), -1
        print(f"{name}: {total:,} {unit}", flush=True)

    def update(self, done: int, total: int | None = None, **_) -> None:
        tenth = 10 * done // max(1, total or 1)
        if tenth > self.shown:
            self.shown = tenth
            spent = time.perf_counter() - self.started
            left = spent * (total - done) / max(done, 1) if total else 0
            print(f"  {done:,}/{total:,} {self.unit}, {spent:.0f} s, about {left:.0f} s left", flush=True)


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _configure(settings: list[str]) -> None:
    from s2vs_cli.scoring import self_join

    for setting in settings:
        name, value = setting.split("=")
        setattr(self_join, name, type(getattr(self_join, name))(value))


def _chamfer(x: np.ndarray, y: np.ndarray) -> float:
    sim = x @ y.T
    return float((sim.max(1).mean() + sim.max(0).mean()) / 2)


def _exhaustive(store, ids: list[str], pairs: list[tuple[str, str]]) -> np.ndarray:
    """Features-only score of each pair from the stored features (one region a frame: frame Chamfer)."""
    features = {i: np.asarray(store.read_features(i), dtype=np.float32).reshape(-1, bench_search.DIMS) for i in ids}
    return np.array([_chamfer(features[a], features[b]) for a, b in pairs])


def join(folder: Path, neighbours: int, settings: list[str], unrelated: int) -> None:
    from s2vs_cli.scoring import self_join
    from s2vs_cli.storage.index import open_index
    from s2vs_cli.storage.store import FeatureStore

    _configure(settings)
    index, _ = open_index(folder / "store.h5")
    print(f"index: {len(index):,} videos, {int(index.index.ntotal):,} segments; peak RSS so far "
          f"{bench_search.peak_rss_gb():.2f} GB; load {_load()}; settings {settings or 'defaults'}", flush=True)
    started = time.perf_counter()
    pairs = self_join.candidate_pairs(index, neighbours=neighbours, progress=Printed())
    seconds = time.perf_counter() - started
    print(f"stages 1-2: {seconds:.0f} s, {len(pairs):,} pairs kept; peak RSS {bench_search.peak_rss_gb():.2f} GB; "
          f"load {_load()}\n{json.dumps(pairs.stages, indent=1)}", flush=True)
    numbers = {video_id: n for n, video_id in enumerate(index.catalogue.ids)}
    found = set(zip(pairs.first.tolist(), pairs.second.tolist()))
    truth = json.loads((folder / "planted.json").read_text())
    planted = [(a, b) for members in truth.values() for i, a in enumerate(members) for b in members[i + 1:]]
    rng = np.random.default_rng(1)
    planted_ids = {i for members in truth.values() for i in members}
    drawn = rng.permutation(index.catalogue.ids)[:unrelated * 2].tolist()
    sample = [i for i in drawn if i not in planted_ids][:unrelated]
    others = [(a, b) for n, a in enumerate(sample) for b in sample[n + 1:]]
    with FeatureStore(folder / "store.h5") as store:
        planted_scores = _exhaustive(store, sorted(planted_ids), planted)
        other_scores = _exhaustive(store, sample, others)
    floor = self_join.MIN_FRAME_LEVEL
    reference = [tuple(sorted((numbers[a], numbers[b]))) for (a, b), s in zip(planted, planted_scores) if s >= floor]
    hits = sum(pair in found for pair in reference)
    above = [tuple(sorted((numbers[a], numbers[b]))) for (a, b), s in zip(others, other_scores) if s >= floor]
    print(f"planted pairs: {len(planted):,}; exhaustive features-only score >= {floor}: {len(reference):,} "
          f"(planted scores: min {planted_scores.min():.3f}, 1st percentile {np.percentile(planted_scores, 1):.3f}, "
          f"median {np.median(planted_scores):.3f})")
    print(f"recall of planted pairs against exhaustive: {hits / max(1, len(reference)):.4f} "
          f"({hits:,}/{len(reference):,}); "
          f"all planted pairs found: {sum(tuple(sorted((numbers[a], numbers[b]))) in found for a, b in planted):,}")
    print(f"unrelated pairs scored exhaustively: {len(others):,} among {len(sample)} videos; highest "
          f"{other_scores.max():.3f}, 99.9th percentile {np.percentile(other_scores, 99.9):.3f}; "
          f"{len(above)} reach the floor, {sum(p in found for p in above)} of them found")
    coarse = {(a, b): c for a, b, c in zip(pairs.first.tolist(), pairs.second.tolist(), pairs.coarse.tolist())}
    planted_coarse = [coarse[p] for p in reference if p in coarse]
    if planted_coarse:
        print(f"coarse scores of the planted pairs found: min {min(planted_coarse):.3f}, "
              f"1st percentile {np.percentile(planted_coarse, 1):.3f}")


def stage1(folder: Path, neighbours: int, every: int, settings: list[str]) -> None:
    """The join's stage-1 candidates of every `every`-th video against an exhaustive scan's."""
    from s2vs_cli.distributed import ProcessGroup
    from s2vs_cli.scoring import self_join
    from s2vs_cli.storage.index import open_index

    _configure(settings)
    index, _ = open_index(folder / "store.h5")
    sampled = ProcessGroup(0, every)  # rank 0 of `every`: queries videos 0, every, 2 * every ...
    results = {}
    for name, exact_max in (("approximate", self_join.EXACT_SEGMENTS), ("exact", 1 << 40)):
        self_join.EXACT_SEGMENTS = exact_max
        started = time.perf_counter()
        (first, second, coarse), how = self_join.nearest_videos(index, neighbours, group=sampled)
        results[name] = {(a, b): c for a, b, c in zip(first.tolist(), second.tolist(), coarse.tolist())}
        print(f"{name} ({how}): {time.perf_counter() - started:.0f} s for {len(index) // every:,} query videos, "
              f"{len(results[name]):,} pairs; load {_load()}", flush=True)
    exact, approximate = results["exact"], results["approximate"]
    for floor in (-1.0, self_join.MIN_COARSE, 0.4, 0.5):
        wanted = [p for p, c in exact.items() if c >= floor]
        print(f"stage-1 recall against exact, pairs with coarse >= {floor}: "
              f"{sum(p in approximate for p in wanted) / max(1, len(wanted)):.4f} of {len(wanted):,}")


def memory(folder: Path) -> None:
    """Stage 2 alone on the pairs (v, v + 1) of every video: each tile holds whole ranges (its worst memory)."""
    from s2vs_cli.scoring import self_join
    from s2vs_cli.storage.index import open_index

    index, _ = open_index(folder / "store.h5")
    first = np.arange(len(index) - 1, dtype=np.int64)
    started = time.perf_counter()
    scores = self_join.frame_level_pairs(index, first, first + 1, progress=Printed())
    print(f"stage 2 alone: {len(scores):,} pairs in {time.perf_counter() - started:.0f} s; peak RSS "
          f"{bench_search.peak_rss_gb():.2f} GB (index loaded: see `join`); load {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("make", "build", "join", "stage1", "memory"))
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=None, help="make: planted groups (default: videos / 50)")
    parser.add_argument("--group", type=int, default=5, help="make: copies a group")
    parser.add_argument("--neighbours", type=int, default=100)
    parser.add_argument("--unrelated", type=int, default=300, help="join: random videos whose every pair is scored")
    parser.add_argument("--every", type=int, default=50, help="stage1: compare every N-th video's candidates")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE: a self_join constant")
    args = parser.parse_args()
    if args.stage == "make":
        bench_search.make(args.folder, args.videos, groups=args.groups or args.videos // 50, group=args.group)
    elif args.stage == "build":
        bench_search.build(args.folder)
    elif args.stage == "join":
        join(args.folder, args.neighbours, args.set, args.unrelated)
    elif args.stage == "stage1":
        stage1(args.folder, args.neighbours, args.every, args.set)
    else:
        memory(args.folder)


if __name__ == "__main__":
    main()
