"""ViSiL throughput: pairs/s one pair at a time (fp32) and one query against 64 targets (fp32 and bf16),
next to a straightforward unchunked implementation (reference_visil.py) on the same machine.

    python benchmarks/bench_similarity.py [--frames 60] [--repeats 5]
"""
from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F

import reference_visil
from timing import throughput
from s2vs_cli.compute import cpu_has_native_bf16
from s2vs_cli.models.visil import ViSiL
from s2vs_cli.scoring.many_targets import video_similarities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    network = ViSiL().eval()
    g = torch.Generator().manual_seed(1)
    videos = [F.normalize(torch.randn(args.frames, 9, 512, generator=g), dim=-1) for _ in range(65)]
    with torch.inference_mode():
        indexed = [network.index_video(v) for v in videos]
        query, targets = indexed[0], indexed[1:]

        ours = torch.stack([network.video_similarity(query, t) for t in targets])
        reference = torch.stack([reference_visil.video_similarity(network, query, t) for t in targets])
        batched = video_similarities(network, query, targets)
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}, native bf16: {cpu_has_native_bf16()}")
        print(f"agreement with the unchunked reference (fp32): max |diff| one-at-a-time "
              f"{(ours - reference).abs().max():.2e}, batched {(batched - reference).abs().max():.2e}")

        n = 64
        single = throughput(lambda: [network.video_similarity(query, targets[i]) for i in range(n)], n, args.repeats)
        single_ref = throughput(lambda: [reference_visil.video_similarity(network, query, targets[i]) for i in range(n)],
                          n, args.repeats)
        many = throughput(lambda: video_similarities(network, query, targets), n, args.repeats)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            many_bf16 = throughput(lambda: video_similarities(network, query, targets), n, args.repeats)
            bf16 = video_similarities(network, query, targets).float()
    print(f"{args.frames}x{args.frames} frames, pairs/s (median of {args.repeats}):")
    print(f"  one pair at a time, fp32        s2vs {single:7.1f}   reference {single_ref:7.1f}   x{single / single_ref:.2f}")
    print(f"  1 query x 64 targets, fp32      s2vs {many:7.1f}   x{many / single_ref:.2f} vs reference one at a time")
    print(f"  1 query x 64 targets, bf16      s2vs {many_bf16:7.1f}   x{many_bf16 / single_ref:.2f} vs reference; "
          f"max |bf16 - fp32| {(bf16 - batched).abs().max():.1e}")


if __name__ == "__main__":
    main()
