"""Peak memory (RSS) of comparing two long videos with full ViSiL: 3,600 and 7,200 frames a side
(1 and 2 hours at 1 fps), best segment and every copied part (matches) included. Each size runs in a
fresh process so peaks don't mix.

    python benchmarks/bench_memory.py [--frames 3600 7200]

The target holds four copies of query excerpts (noisy copies of the query's frames), so there are parts
to find: 1.4%, 4.2% (played at half speed), 0.8% and 8.3% of the video long (100, 300, 60 and 600 s at
7,200 frames).

Also checks that the chunked/tiled computation equals the direct one on a size both can do.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


# Planted copies, as fractions of the length: (query start, target start, query frames, target frames per query frame).
PLANTED = ((300 / 7200, 5000 / 7200, 100 / 7200, 1), (2000 / 7200, 100 / 7200, 300 / 7200, 2),
           (4000 / 7200, 4000 / 7200, 60 / 7200, 1), (6000 / 7200, 2500 / 7200, 600 / 7200, 1))


def planted_videos(frames: int, generator) -> tuple:
    """Random region features [frames, 9, 512] for a query and a target holding noisy copies of its excerpts,
    and the copies' frame ranges (query first, query last, target first, target last)."""
    import torch
    import torch.nn.functional as F

    query = torch.randn(frames, 9, 512, generator=generator)
    target = torch.randn(frames, 9, 512, generator=generator)
    ranges = []
    for q, t, length, slowdown in PLANTED:
        q, t, length = round(q * frames), round(t * frames), round(length * frames)
        copy = query[q:q + length].repeat_interleave(slowdown, 0)
        target[t:t + len(copy)] = copy + 0.3 * torch.randn(copy.shape, generator=generator)
        ranges.append((q, q + length - 1, t, t + len(copy) - 1))
    return F.normalize(query, dim=-1), F.normalize(target, dim=-1), ranges


def measure(frames: int) -> dict:
    """Run in a child process: compare two random `frames`-long videos with planted copies, report peak RSS,
    seconds, and how many copies the matches found (each covering at least half of a copy on both videos)."""
    import numpy as np
    import torch

    from s2vs_cli.models.visil import ViSiL, chamfer
    from s2vs_cli.scoring.localization import best_segment, locate_matches

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    network = ViSiL().eval()
    g = torch.Generator().manual_seed(1)
    query_features, target_features, planted = planted_videos(frames, g)
    started = time.perf_counter()
    with torch.inference_mode():
        query = network.index_video(query_features)
        target = network.index_video(target_features)
        del query_features, target_features
        f2f = network.frame_to_frame_similarity(query, target)
        similarity = chamfer(network.comparator_map(f2f)).item()
        f2f = f2f.numpy()
        segment = best_segment(f2f)
        located = time.perf_counter()
        peak_before_matches = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = np.arange(frames, dtype=float)
        matches = locate_matches(f2f, times, times, fps=1.0)
    ended = time.perf_counter()

    def covers(m, p):
        half_q, half_t = (p[1] - p[0] + 1) / 2, (p[3] - p[2] + 1) / 2
        q = min(m.times.query_end, p[1] + 1) - max(m.times.query_start, p[0])
        t = min(m.times.target_end, p[3] + 1) - max(m.times.target_start, p[2])
        return q >= half_q and t >= half_t

    return {"frames": frames, "similarity": similarity, "seconds": ended - started,
            "matches_seconds": ended - located, "matches": len(matches),
            "planted_found": sum(any(covers(m, p) for m in matches) for p in planted), "planted": len(planted),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "import_rss_gb": baseline / 2**20, "before_matches_rss_gb": peak_before_matches / 2**20,
            "segment_frames": segment.query_last - segment.query_first + 1}


def check_equal(frames: int = 700) -> float:
    """Chunked + tiled vs one block + one tile, same inputs: max absolute difference."""
    import torch
    import torch.nn.functional as F

    from s2vs_cli.models.visil import ViSiL, frame_to_frame_similarity

    torch.manual_seed(0)
    network = ViSiL().eval()
    g = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        q = network.index_video(F.normalize(torch.randn(frames, 9, 512, generator=g), dim=-1))
        t = network.index_video(F.normalize(torch.randn(frames + 37, 9, 512, generator=g), dim=-1))
        whole = network.comparator_map(frame_to_frame_similarity(q, t, chunk_elements=1 << 40), tile=1 << 20)
        pieces = network.comparator_map(frame_to_frame_similarity(q, t, chunk_elements=1 << 20), tile=128)
    return float((whole - pieces).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[3600, 7200])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print(f"chunked/tiled vs direct on 700x737 frames: max |diff| = {check_equal():.1e}")
    for frames in args.frames:
        out = subprocess.run([sys.executable, __file__, "--child", str(frames)], capture_output=True, text=True,
                             check=True)
        result = json.loads(out.stdout)
        print(f"{frames}x{frames} frames: peak RSS {result['peak_rss_gb']:.2f} GB "
              f"(after imports {result['import_rss_gb']:.2f} GB), {result['seconds']:.1f} s "
              f"(index, frame-to-frame map, comparator, video similarity, segment, matches); "
              f"matches {result['matches_seconds']:.1f} s "
              f"(peak RSS before them {result['before_matches_rss_gb']:.2f} GB): "
              f"{result['matches']} found, "
              f"{result['planted_found']}/{result['planted']} planted copies covered")


if __name__ == "__main__":
    main()
