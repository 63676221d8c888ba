"""Peak memory (RSS) of comparing two long videos with full ViSiL: 3,600 and 7,200 frames a side
(1 and 2 hours at 1 fps). Each size runs in a fresh process so peaks don't mix.

    python benchmarks/bench_memory.py [--frames 3600 7200]

Also checks that the chunked/tiled computation equals the direct one on a size both can do.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(frames: int) -> dict:
    """Run in a child process: compare two random `frames`-long videos, report peak RSS and seconds."""
    import torch
    import torch.nn.functional as F

    from s2vs_cli.scoring.localization import best_segment
    from s2vs_cli.models.visil import ViSiL, chamfer

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    network = ViSiL().eval()
    g = torch.Generator().manual_seed(1)
    started = time.perf_counter()
    with torch.inference_mode():
        query = network.index_video(F.normalize(torch.randn(frames, 9, 512, generator=g), dim=-1))
        target = network.index_video(F.normalize(torch.randn(frames, 9, 512, generator=g), dim=-1))
        f2f = network.frame_to_frame_similarity(query, target)
        similarity = chamfer(network.comparator_map(f2f)).item()
        segment = best_segment(f2f.numpy())
    return {"frames": frames, "similarity": similarity, "seconds": time.perf_counter() - started,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "import_rss_gb": baseline / 2**20, "segment_frames": segment.query_last - segment.query_first + 1}


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
              f"(index, frame-to-frame map, comparator, video similarity, segment)")


if __name__ == "__main__":
    main()
