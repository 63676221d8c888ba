"""Region-feature throughput (frames/s) at batch 32: fp32, bf16 (what `--precision auto` picks on CPUs
with native bf16) and bf16 with --compile, next to the original's way of running the same network
(NCHW, BatchNorm unfolded, per-module .contiguous(), autocast) on the same machine.

    python benchmarks/bench_extractor.py [--frames 96] [--frames-per-batch 32] [--no-compile]
"""
from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from timing import throughput
from s2vs_cli.models.extractor import RegionExtractor
from s2vs_cli.models.resnet import ResNet50LiMAC, region_vectors, to_model_input
from s2vs_cli.models.whitening import PCAWhitening
from s2vs_cli.compute import autocast, cpu_has_native_bf16


def original_style(extractor: RegionExtractor, frames: torch.Tensor, frames_per_batch: int, precision: str) -> torch.Tensor:
    """The original's loop: whole batches, NCHW tensors made contiguous after every module."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(frames), frames_per_batch):
            x = to_model_input(frames[start:start + frames_per_batch]).contiguous()
            maps = []
            with autocast(torch.device("cpu"), precision):
                for name, module in extractor.backbone.cnn.named_children():
                    if name in ("avgpool", "fc"):
                        continue
                    x = module(x).contiguous()
                    if name.startswith("layer"):
                        maps.append(x)
            outputs.append(extractor.whitening(region_vectors(maps)))
    return torch.cat(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--frames-per-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    plain = RegionExtractor(ResNet50LiMAC(), PCAWhitening.random(0)).eval()
    ours = copy.deepcopy(plain).optimize_for_inference()
    frames = torch.randint(0, 256, (args.frames, 224, 224, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    bs, n, r = args.frames_per_batch, args.frames, args.repeats
    print(f"{torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}, batch {bs}, {n} frames")

    exact = ours.extract(frames, bs, "fp32")
    results = {
        "original-style fp32": throughput(lambda: original_style(plain, frames, bs, "fp32"), n, r),
        "s2vs fp32": throughput(lambda: ours.extract(frames, bs, "fp32"), n, r),
        "original-style bf16 autocast": throughput(lambda: original_style(plain, frames, bs, "bf16"), n, r),
        "s2vs bf16": throughput(lambda: ours.extract(frames, bs, "bf16"), n, r),
    }
    cosines = {"s2vs bf16": F.cosine_similarity(ours.extract(frames, bs, "bf16"), exact, dim=-1).min().item()}
    if not args.no_compile:
        started = time.perf_counter()
        compiled = ours.extract(frames[:bs], bs, "bf16", compiled=True)
        print(f"torch.compile warm-up: {time.perf_counter() - started:.0f} s")
        results["s2vs bf16 --compile"] = throughput(lambda: ours.extract(frames, bs, "bf16", compiled=True), n, r)
        cosines["s2vs bf16 --compile"] = F.cosine_similarity(
            ours.extract(frames, bs, "bf16", compiled=True), exact, dim=-1).min().item()
        del compiled
    for name, value in results.items():
        cosine = f"   min cosine to fp32 {cosines[name]:.6f}" if name in cosines else ""
        print(f"  {name:30s} {value:6.1f} frames/s{cosine}")


if __name__ == "__main__":
    main()
