"""Evaluation speed: similarity throughput of the scoring path, and evaluate wall time at FIVR-5K size.

1. Pairs/s of one query against many 60-frame targets, as `s2vs evaluate` scores them (VideoScorer:
   targets indexed once, equal lengths batched), features only and full ViSiL, next to a straightforward
   unchunked einsum implementation of the same math (reference_visil.py, one pair at a time, fp32);
   fp32 results must agree to 1e-5.
2. Wall time of scoring + metrics on a synthetic FIVR-5K-sized feature file (random features, 40-80
   frames per video, float16), 50 queries against the database, random ground truth.

    python benchmarks/bench_evaluate.py [--targets 64] [--videos 5000] [--queries 50] [--skip-evaluate]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import reference_visil
from s2vs_cli.datasets import CustomBenchmark, evaluate
from s2vs_cli.scoring.retrieval import VideoScorer, score_store
from s2vs_cli.runtime import Runtime
from s2vs_cli.models.visil import ViSiL
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity

CPU = torch.device("cpu")


def pairs_per_second(scorer: VideoScorer, query: torch.Tensor, targets: list[torch.Tensor], repeats: int = 3):
    """(pairs/s, scores) of one query against all targets, median of `repeats` after a warm-up."""
    prepared_query = scorer.prepare_query(query.numpy())
    prepared = scorer.prepare_targets([t.numpy() for t in targets])
    scorer.score(prepared_query, prepared)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        scores = scorer.score(prepared_query, prepared)
        times.append(time.perf_counter() - started)
    return len(targets) / float(np.median(times)), scores


def reference_pairs_per_second(network: ViSiL, query, targets, features_only: bool):
    """Pairs/s and scores of the straightforward implementation, one pair at a time, fp32."""
    with torch.inference_mode():
        q = query if features_only else network.index_video(query)
        ts = targets if features_only else [network.index_video(t) for t in targets]
        started = time.perf_counter()
        scores = [float(reference_visil.video_similarity(network, q, t, features_only)) for t in ts]
        return len(targets) / (time.perf_counter() - started), np.array(scores)


def throughput_table(targets_count: int) -> None:
    torch.manual_seed(0)
    network = ViSiL().eval()
    g = torch.Generator().manual_seed(1)
    videos = [F.normalize(torch.randn(60, 9, 512, generator=g), dim=-1) for _ in range(targets_count + 1)]
    query, targets = videos[0], videos[1:]
    auto = Runtime.start("cpu", "auto").precision
    print(f"1 query x {targets_count} targets, 60 frames each")
    for features_only in (True, False):
        mode = "features only" if features_only else "full ViSiL"
        reference, expected = reference_pairs_per_second(network, query, targets, features_only)
        for precision in dict.fromkeys(["fp32", auto]):
            scorer = VideoScorer(None if features_only else network, CPU, precision)
            rate, scores = pairs_per_second(scorer, query, targets)
            agreement = f", max |diff| {np.abs(scores - expected).max():.1e}" if precision == "fp32" else ""
            print(f"  {mode:13s} {precision}: {rate:7.0f} pairs/s = {rate / reference:4.1f}x the reference "
                  f"({reference:.0f} pairs/s){agreement}")


def evaluate_wall_time(videos: int, queries: int) -> None:
    rng = np.random.default_rng(0)
    ids = [f"v{i:05d}" for i in range(videos)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        identity = StoreIdentity("bench", "bench", 1.0, 512)
        with PartWriter(Path(folder) / "parts", identity, "bench", max_videos=10**9, max_seconds=1e9) as writer:
            for video_id in ids:
                x = rng.standard_normal((int(rng.integers(40, 81)), 9, 512)).astype(np.float32)
                writer.add(video_id, x / np.linalg.norm(x, axis=-1, keepdims=True), np.arange(1.0))
        store = Path(folder) / "features.h5"
        merge_parts(store, writer.written, identity, "bench")
        print(f"synthetic feature file: {videos} videos, {store.stat().st_size / 1e9:.2f} GB, "
              f"written in {time.perf_counter() - started:.0f} s")
        benchmark = CustomBenchmark(name="custom", queries=ids[:queries], database=ids, source=store,
                                    positives={q: frozenset(rng.choice(ids, 5).tolist()) for q in ids[:queries]},
                                    negatives=None, segments={})
        torch.manual_seed(0)
        network = ViSiL().eval()
        auto = Runtime.start("cpu", "auto").precision
        for name, scorer in (("features only", VideoScorer(None, CPU, auto)), ("full ViSiL", VideoScorer(network, CPU, auto))):
            started = time.perf_counter()
            scored = score_store(str(store), benchmark.queries, benchmark.database, scorer)
            scoring = time.perf_counter() - started
            result = evaluate(benchmark, scored.similarities)
            total = time.perf_counter() - started
            pairs = queries * videos
            print(f"  {name} ({auto}): {total:.0f} s for {pairs:,} pairs ({pairs / scoring:.0f} pairs/s scoring, "
                  f"metrics {total - scoring:.1f} s), mAP {result.metrics['mAP']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=64)
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--skip-evaluate", action="store_true")
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} torch threads")
    throughput_table(args.targets)
    if not args.skip_evaluate:
        evaluate_wall_time(args.videos, args.queries)


if __name__ == "__main__":
    main()
