"""How the low-information rule separates flat frames from real ones (issue 28): region coherence, measured.

    mkdir flat && for c in black white gray red blue 0x101010 0xf0f0f0 0x204080; do
        ffmpeg -f lavfi -i color=c=$c:s=640x360:d=5:r=25 -c:v libx264 -pix_fmt yuv420p flat/flat_$c.mp4; done
    ffmpeg -f lavfi -i color=c=black:s=640x360:d=5:r=25 -vf noise=alls=8:allf=t -pix_fmt yuv420p flat/flat_noisyblack.mp4
    ffmpeg -i bikes.mp4 -vf scale=640:360,fade=t=out:st=0:d=10 -an flat/fade_bikes_black.mp4   # and others
    s2vs extract-features flat ../shared/videos -o low.h5 --backbone-weights random --pca random --fps 2 --dtype float32
    python benchmarks/bench_low_information.py low.h5

Videos named flat_* are flat, fade_* fades (listed frame by frame), the rest real. The mean direction is the
real frames' (what a collection of real videos gives). Prints percentiles of each kind and what share of the real
frames the threshold catches.
"""
from __future__ import annotations

import argparse

import numpy as np

from s2vs_cli.scoring.common_frames import LOW_INFORMATION, mean_direction, region_coherence
from s2vs_cli.storage.frame_descriptors import frame_descriptors
from s2vs_cli.storage.store import FeatureStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features")
    args = parser.parse_args()
    with FeatureStore(args.features) as store:
        videos = {i: np.asarray(store.read_features(i), np.float32) for i in store.ids()}
    real = [i for i in videos if not i.startswith(("flat_", "fade_"))]
    direction = mean_direction(np.concatenate([frame_descriptors(videos[i]) for i in real]))
    kinds = {"real": real, "flat": [i for i in videos if i.startswith("flat_")]}
    for kind, ids in kinds.items():
        values = np.concatenate([region_coherence(videos[i], direction) for i in ids])
        p = np.percentile(values, [50, 95, 99])
        print(f"{kind}: n={len(values)} min {values.min():.3f} median {p[0]:.3f} p95 {p[1]:.3f} p99 {p[2]:.3f} "
              f"max {values.max():.3f}; at or above {LOW_INFORMATION}: {(values >= LOW_INFORMATION).mean():.3f}")
    for i in videos:
        if i.startswith("fade_"):
            print(i, " ".join(f"{v:.2f}" for v in region_coherence(videos[i], direction)))


if __name__ == "__main__":
    main()
