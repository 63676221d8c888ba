"""Fitting a collection's common frames at scale (issue 28): seconds and peak memory of `common_frames_of_index`.

    python benchmarks/bench_search.py make  --folder DIR --videos 100000
    python benchmarks/bench_search.py build --folder DIR
    python benchmarks/bench_common_frames.py --folder DIR

Fits CommonFrames on the index's frame descriptors (7.5 M frames of 512 dims for 100,000 videos: 7.7 GB of
float16 read twice), as `s2vs search` does on first use, without the cached file. The index's faiss part is
not loaded (it is not needed to fit, and would count in the peak RSS); the catalogue and frame descriptors are
opened as VideoIndex.load opens them. The store's planted groups (every query's frames in 120 stored videos,
with noise of increasing strength) are content repeated in many videos: the report says how many of their
copies come out common, and how many of the random frames (none should).
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from s2vs_cli.scoring.common_frames_index import FILE, common_frames_of_index, index_blocks
from s2vs_cli.storage.catalogue import VideoCatalogue
from s2vs_cli.storage.frame_descriptors import CRC_FILE, FrameDescriptors
from s2vs_cli.storage.index import StoreStamp, index_dir_for


class IndexWithoutFaiss:
    """What common_frames_of_index reads of a VideoIndex: frame descriptors, stamp, size and folder."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "videos.json").read_text())
        self.catalogue = VideoCatalogue.load(folder / "catalogue.npz")
        self.frames = FrameDescriptors(folder, int(meta["dims"]), self.catalogue.frames.astype(np.int64),
                                       np.load(folder / CRC_FILE))
        self.frames.check()
        self.stamp, self.folder = StoreStamp(**meta["stamp"]), folder

    def __len__(self) -> int:
        return len(self.catalogue)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    folder = index_dir_for(args.folder / "store.h5")
    (folder / FILE).unlink(missing_ok=True)
    index = IndexWithoutFaiss(folder)
    before = peak_mb()
    started = time.perf_counter()
    common = common_frames_of_index(index)
    seconds = time.perf_counter() - started
    result = {"videos": len(index), "frames": int(index.frames.offsets[-1]), "seconds": round(seconds, 1),
              "peak_rss_mb": round(peak_mb()), "rss_before_mb": round(before),
              "prototypes": len(common.prototypes), "prototype_videos_max": int(common.videos.max(initial=0)),
              "saved_bytes": (folder / FILE).stat().st_size}
    started = time.perf_counter()
    common_frames_of_index(index)
    result["cached_seconds"] = round(time.perf_counter() - started, 2)
    common_videos, common_frames = 0, 0  # how much of the store comes out common
    for block, videos in index_blocks(index):
        flagged = common.common(block)
        common_frames += int(flagged.sum())
        common_videos += len(np.unique(videos[flagged]))
    result |= {"common_frames": common_frames, "videos_with_common_frames": common_videos}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
