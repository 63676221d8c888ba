"""extract-features throughput and memory over ../shared/videos, next to the extractor alone.

Extractor alone: the same frames, already decoded and in memory, through RegionExtractor.extract at
the same batch size and precision: the ceiling the pipeline can reach if decoding were free.
Pipeline: extraction.extract_features (decoding workers, cross-video batches, part files, merge),
timed from the first decoded frame request to the merged file, models already loaded and warm.
Memory: peak RSS of a whole `s2vs extract-features` run (main process, and the largest worker) on
the clip set and on the set repeated 4 times (as distinct ids), each in a fresh process.

    python benchmarks/bench_extract_features.py [--precision auto] [--frames-per-batch 128] [--workers N]
        [--repeat 4] [--skip-memory]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from s2vs_cli.jobs.extract_features import extract_features
from s2vs_cli.storage.bookkeeping import ExtractionOptions
from s2vs_cli.media.inputs import VideoInput, collect_inputs
from s2vs_cli.media.video import decode_video
from s2vs_cli.runtime import Runtime

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


def repeated_inputs(repeat: int) -> list[VideoInput]:
    """The clip set `repeat` times over, as distinct ids (what a bigger dataset looks like)."""
    base = collect_inputs([VIDEOS]).inputs
    return [VideoInput(f"{item.video_id}-{copy}", item.path) for copy in range(repeat) for item in base]


def extractor_alone(extractor, frames: torch.Tensor, batch_size: int, precision: str) -> float:
    """Frames/s of the model on in-memory frames, batches of `batch_size` (median of 3 after a warm-up)."""
    extractor.extract(frames[:batch_size], batch_size, precision)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        for start in range(0, len(frames), batch_size):
            extractor.extract(frames[start:start + batch_size], batch_size, precision)
        times.append(time.perf_counter() - started)
    return len(frames) / float(np.median(times))


def pipeline(runtime: Runtime, items, options: ExtractionOptions) -> tuple[float, float, int]:
    """(frames/s, model-busy fraction, frames) of one extract_features run into a fresh file."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        summary = extract_features(items, Path(folder) / "out.h5", runtime, options)
        seconds = time.perf_counter() - started
        assert not summary.failures, summary.failures
    return summary.frames / seconds, summary.model_seconds / seconds, summary.frames


def peak_rss(repeat: int, workers: int, precision: str, batch_size: int) -> dict:
    """Peak RSS (MB) of a whole CLI run over the set repeated `repeat` times, in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "videos"
        data.mkdir()
        for item in repeated_inputs(repeat):
            (data / f"{item.video_id}{item.path.suffix}").symlink_to(item.path)
        # A worker's own peak (VmHWM) is read from /proc while it runs: ru_maxrss of children would
        # report the parent's size, which a spawned child inherits at fork before it execs.
        code = (
            "import json, os, resource, sys, threading, time\n"
            "from s2vs_cli.cli import app\n"
            "workers = {}\n"
            "def watch():\n"
            "    while True:\n"
            "        for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "            try:\n"
            "                fields = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status'))\n"
            "            except (OSError, ValueError):\n"
            "                continue\n"
            "            if int(fields['PPid']) == os.getpid() and 'VmHWM' in fields:\n"
            "                workers[pid] = int(fields['VmHWM'].split()[0]) / 1024\n"
            "        time.sleep(0.05)\n"
            "threading.Thread(target=watch, daemon=True).start()\n"
            "try:\n"
            "    app(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "print(json.dumps({'main': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,\n"
            "                  'worker': max(workers.values(), default=0)}))\n"
        )
        args = [sys.executable, "-c", code, "extract-features", str(data), "-o", str(Path(folder) / "out.h5"),
                "--backbone-weights", "random", "--pca", "random", "--precision", precision,
                "--frames-per-batch", str(batch_size), "-j", str(workers), "-q"]
        env = os.environ | {"S2VS_OFFLINE": "1"}
        out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
        return json.loads(out.strip().splitlines()[-1]) | {"videos": len(list(data.iterdir()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--frames-per-batch", dest="batch_size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core, at most 8")
    parser.add_argument("--repeat", type=int, default=4, help="copies of the clip set for the throughput run")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        sys.exit(f"{VIDEOS} not found: the ../shared folder must be beside the checkout")
    runtime = Runtime.start("auto", args.precision)
    device, precision = runtime.device, runtime.precision
    cores = len(os.sched_getaffinity(0))
    workers = args.workers if args.workers is not None else max(1, min(8, cores))
    extractor = runtime.load_extractor("random", "random")
    items = repeated_inputs(args.repeat)
    print(f"device {device}, {cores} cores, {torch.get_num_threads()} torch threads, precision {precision}, "
          f"batch {args.batch_size}, {workers} decoding workers, {len(items)} videos")

    started = time.process_time()
    frames = torch.from_numpy(np.concatenate([decode_video(i.path, min_frames=0, threads=1).frames for i in items]))
    decode_cpu = (time.process_time() - started) / len(frames)
    alone = extractor_alone(extractor, frames, args.batch_size, precision)
    started = time.process_time()
    extractor.extract(frames[:args.batch_size], args.batch_size, precision)
    model_cpu = (time.process_time() - started) / args.batch_size
    print(f"extractor alone: {alone:.1f} frames/s")
    print(f"CPU time per frame: decoding {1000 * decode_cpu:.1f} ms (one FFmpeg thread, as the workers run), "
          f"model {1000 * model_cpu:.1f} ms (all threads)")
    if device.type == "cpu":
        ceiling = cores / (decode_cpu + model_cpu)
        print(f"ceiling when decoding and model share the {cores} cores: {ceiling:.1f} frames/s "
              f"= {ceiling / alone:.2f}x the extractor alone")
    options = ExtractionOptions(frames_per_batch=args.batch_size, workers=workers)
    rates = [pipeline(runtime, items, options) for _ in range(2)]
    rate, busy, count = max(rates)
    print(f"extract-features: {rate:.1f} frames/s over {count} frames = {rate / alone:.2f}x the extractor alone "
          f"(model busy {100 * busy:.0f}% of the run)")
    del frames
    if not args.skip_memory:
        for repeat in (1, 4):
            rss = peak_rss(repeat, workers, precision, args.batch_size)
            print(f"peak RSS, {rss['videos']} videos: main {rss['main']:.0f} MB, largest worker {rss['worker']:.0f} MB")


if __name__ == "__main__":
    main()
