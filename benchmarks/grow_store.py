"""Append 1,000 videos (20 of them noisy copies of stored ones) to a `bench_dedup.py make` store, as
extract-features appends them: part files merged into the store. What `dedup --previous` is timed on
(BENCHMARKS.md, issue 29).

    python benchmarks/grow_store.py --folder DIR [--videos 1000] [--copies 20] [--prefix n]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from s2vs_cli.scoring.retrieval import read_video
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import FeatureStore, StoreIdentity, read_identity

NOISE = 0.3  # a copy's noise, in units of a unit frame's norm


def grow(store: Path, videos: int, copies: int, seed: int = 29, prefix: str = "n") -> None:
    """Append `videos` new videos (<prefix>00000, ...) of 30-120 random unit frames, the first `copies` of them noisy
    copies of stored videos, to `store`."""
    rng = np.random.default_rng(seed)
    identity = read_identity(store) or StoreIdentity("synthetic", "synthetic", 1.0, 512, dtype="float16")
    with FeatureStore(store) as stored:
        ids = sorted(stored.ids())
        sources = [ids[n] for n in rng.choice(len(ids), copies, replace=False)]
        originals = [read_video(stored, video).astype(np.float32) for video in sources]
    started = time.perf_counter()
    with PartWriter(store.with_name(store.name + ".grow-parts"), identity, "bench", dtype="float16") as writer:
        for n in range(videos):
            if n < copies:
                x = originals[n] + NOISE * rng.standard_normal(originals[n].shape).astype(np.float32) / np.sqrt(512)
            else:
                x = rng.standard_normal((int(rng.integers(30, 121)), *originals[0].shape[1:])).astype(np.float32)
            x = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float16)
            writer.add(f"{prefix}{n:05d}", x, np.arange(len(x), dtype=float))
    print(f"parts written in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    merge_parts(store, writer.written, identity, "bench", keep_existing=True)
    print(f"merged into {store} in {time.perf_counter() - started:.1f} s; copies of {', '.join(sources[:5])}, ...")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="a bench_dedup.py make folder (its store.h5)")
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--prefix", default="n", help="the new ids' prefix (another for each growth)")
    parser.add_argument("--seed", type=int, default=29)
    args = parser.parse_args()
    grow(args.folder / "store.h5", args.videos, args.copies, args.seed, args.prefix)


if __name__ == "__main__":
    main()
