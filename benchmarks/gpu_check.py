"""The measuring steps of benchmarks/gpu_check.sh, one subcommand each; every step writes one JSON file.

    python benchmarks/gpu_check.py clips DIR [--count 32] [--seconds 60]
    python benchmarks/gpu_check.py extractor OUT.json --device cuda|cpu [--frames N] [--frames-per-batch N]
    python benchmarks/gpu_check.py similarity OUT.json --device cuda|cpu [--targets 64,1024]
    python benchmarks/gpu_check.py cli OUT.json -- extract-features ...   (the s2vs CLI, in this process)
    python benchmarks/gpu_check.py table RESULTS_DIR [--write DIR]

Everything runs on seeded random weights, so no download is needed; the clips are drawn here.
Throughput on the GPU is timed between CUDA synchronisations; peak memory is
torch.cuda.max_memory_allocated, reset before each measured variant.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE, WIDTH, HEIGHT = 25, 640, 360  # a typical web video's frame rate and size


# ---------------------------------------------------------------------------------------------- clips

def draw_clip(path: Path, seed: int, seconds: int) -> Path:
    """Encode an H.264 clip of moving rectangles over a gradient (cheap to draw, real to decode)."""
    import av

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, HEIGHT)[:, None, None]
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    background = np.broadcast_to(top + (bottom - top) * ramp, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    shapes = [(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(-80, 80), rng.uniform(-50, 50),
               int(rng.integers(20, 90)), rng.integers(0, 256, 3)) for _ in range(6)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"crf": "26", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(seconds * RATE):
            frame = background.copy()
            for x0, y0, vx, vy, size, colour in shapes:
                x = int((x0 + vx * i / RATE) % (WIDTH - size))
                y = int((y0 + vy * i / RATE) % (HEIGHT - size))
                frame[y:y + size, x:x + size] = colour
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def make_clips(folder: Path, count: int, seconds: int) -> dict:
    """`count` clips of `seconds` each in `folder`, drawn in parallel on every core."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = [(folder / f"clip{i:03d}.mp4", i, seconds) for i in range(count)]
    with Pool(min(count, os.cpu_count() or 1)) as pool:
        pool.starmap(draw_clip, jobs)
    return {"clips": count, "seconds_each": seconds, "size": f"{WIDTH}x{HEIGHT}@{RATE}",
            "took_s": round(time.perf_counter() - started, 1)}


# ------------------------------------------------------------------------------------------- timing

def synchronize(device) -> None:
    """Wait for queued GPU work, so wall-clock time covers it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], items: int, repeats: int, device) -> dict:
    """Median items/s of `fn` over `repeats` runs after one warm-up, and the peak GPU memory of those runs."""
    import torch

    fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - started)
    result = {"rate": round(items / statistics.median(times), 1)}
    if device.type == "cuda":
        result["peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return result


def start_runtime(device: str, precision: str = "fp32"):
    """The library's one Runtime for `device` (what every command builds)."""
    from s2vs_cli.runtime import Runtime

    return Runtime.start(device, precision)


# ---------------------------------------------------------------------------------------- extractor

def measure_extractor(save: Callable[[dict], None], device: str, frames_count: int, frames_per_batch: int,
                      repeats: int, compile_: bool) -> None:
    """Region-extractor frames/s in fp32, bf16, fp16 (CUDA) and compiled, with the cosine to fp32; `save`
    gets the results so far after each variant (a step cut by its timeout keeps what it measured)."""
    import torch
    import torch.nn.functional as F

    runtime = start_runtime(device)
    extractor = runtime.load_extractor("random", "random")
    frames = torch.randint(0, 256, (frames_count, 224, 224, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    if runtime.device.type == "cuda":
        frames = frames.pin_memory()  # what a loader hands a GPU; the host-to-device copy stays timed
    precisions = ["fp32", "bf16"] + (["fp16"] if runtime.device.type == "cuda" else [])
    fast = "fp16" if runtime.device.type == "cuda" else "bf16"
    exact = extractor.extract(frames, frames_per_batch, "fp32")
    results = {}
    report = {"device": describe(runtime.device), "frames": frames_count, "frames_per_batch": frames_per_batch,
              "variants": results, "complete": False}
    for precision in precisions:
        run = lambda p=precision: extractor.extract(frames, frames_per_batch, p)  # noqa: E731
        results[precision] = timed(run, frames_count, repeats, runtime.device)
        results[precision]["min_cosine"] = round(F.cosine_similarity(run(), exact, dim=-1).min().item(), 6)
        save(report)
    if compile_:
        started = time.perf_counter()
        extractor.extract(frames[:frames_per_batch], frames_per_batch, fast, compiled=True)
        synchronize(runtime.device)
        warm_up = time.perf_counter() - started
        run = lambda: extractor.extract(frames, frames_per_batch, fast, compiled=True)  # noqa: E731
        results[f"{fast} compiled"] = timed(run, frames_count, repeats, runtime.device) | {
            "warm_up_s": round(warm_up, 1),
            "min_cosine": round(F.cosine_similarity(run(), exact, dim=-1).min().item(), 6)}
    save(report | {"complete": True})


# --------------------------------------------------------------------------------------- similarity

def measure_similarity(save: Callable[[dict], None], device: str, frames: int, target_counts: list[int],
                       repeats: int) -> None:
    """ViSiL pairs/s: one pair at a time (fp32), and one query against N targets in fp32, bf16, fp16;
    `save` gets the results so far after each variant."""
    import torch
    import torch.nn.functional as F

    from s2vs_cli.compute import autocast
    from s2vs_cli.scoring.many_targets import video_similarities

    runtime = start_runtime(device)
    network = runtime.load_network("random")
    place = runtime.device
    g = torch.Generator().manual_seed(1)
    videos = [F.normalize(torch.randn(frames, 9, 512, generator=g), dim=-1).to(place)
              for _ in range(max(target_counts) + 1)]
    with torch.inference_mode():
        indexed = [network.index_video(v) for v in videos]
    query, targets = indexed[0], indexed[1:]
    results = {"one pair at a time fp32": timed(
        lambda: [network.video_similarity(query, t) for t in targets[:64]], min(64, len(targets)), repeats, place)}
    report = {"device": describe(place), "frames": frames, "variants": results, "complete": False}
    save(report)
    precisions = ["fp32", "bf16"] + (["fp16"] if place.type == "cuda" else [])
    for count in target_counts:
        for precision in precisions:
            def run(n=count, p=precision):
                with autocast(place, p):
                    return video_similarities(network, query, targets[:n])
            results[f"1 query x {count} targets {precision}"] = timed(run, count, repeats, place)
            save(report)
    save(report | {"complete": True})


# ------------------------------------------------------------------------------------------------ cli

def run_cli(args: list[str]) -> dict:
    """Run `s2vs ARGS` in this process: wall time, exit status, its --json output and peak GPU memory."""
    import torch

    from s2vs_cli.cli import app

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    captured = io.StringIO()
    started = time.perf_counter()
    code = 0
    with contextlib.redirect_stdout(captured):
        try:
            app(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    wall = time.perf_counter() - started
    lines = [line for line in captured.getvalue().splitlines() if line.startswith("{")]
    output = json.loads(lines[-1]) if lines else {}
    result = {"args": args, "exit": code, "wall_s": round(wall, 2), "output": output}
    if torch.cuda.is_available():
        result["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if output.get("seconds"):
        result["videos_per_s"] = round(output["written"] / output["seconds"], 2)
        result["frames_per_s"] = round(output["frames"] / output["seconds"], 1)
    return result


# ---------------------------------------------------------------------------------------------- table

def describe(device) -> str:
    """The device's name as a person reads it."""
    import platform

    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, " \
           f"torch {torch.__version__}"


def table_rows(results: dict) -> list[tuple[str, str, str]]:
    """(what, GPU figure, CPU figure) for every measured variant found in the step results."""
    tests = results.get("tests_gpu", {}).get("summary", "not run")
    rows = [("CUDA tests (pytest -k 'cuda or gpu')", tests, "")]

    def figure(step: str, key: str, unit: str, side: str) -> str:
        data = results.get(f"{step}_{side}")
        if data is None:
            return "not run"
        if "error" in data:
            return f"failed ({data['error']})"
        value = data.get("variants", {}).get(key)
        if value is None:
            return "-"
        extra = f", {value['peak_mb']} MB peak" if "peak_mb" in value else ""
        return f"{value['rate']:,.1f} {unit}{extra}"

    for step, unit in (("extractor", "frames/s"), ("similarity", "pairs/s")):
        keys = []
        for side in ("gpu", "cpu"):
            keys += [k for k in results.get(f"{step}_{side}", {}).get("variants", {}) if k not in keys]
        rows += [(f"{step}: {k}", figure(step, k, unit, "gpu"), figure(step, k, unit, "cpu")) for k in keys]

    def cli_figure(side: str) -> str:
        data = results.get(f"extract_features_{side}")
        if data is None:
            return "not run"
        if "error" in data or data.get("exit") != 0 or "frames_per_s" not in data:
            return f"failed ({data.get('error') or 'exit ' + str(data.get('exit'))})"
        out = data["output"]
        peak = f", {data['peak_mb']} MB peak" if side == "gpu" and "peak_mb" in data else ""
        return (f"{data['videos_per_s']:.2f} videos/s, {data['frames_per_s']:,.1f} frames/s "
                f"({out['written']} video{'s' * (out['written'] != 1)}, {out['frames']} frames, "
                f"{out['precision']}{peak})")

    rows.append(("s2vs extract-features", cli_figure("gpu"), cli_figure("cpu")))
    return rows


def render_table(folder: Path) -> tuple[str, dict]:
    """The step results in `folder` as one Markdown table (GPU beside CPU), and all of them as one dict."""
    results = {}
    for path in sorted(folder.glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except ValueError as error:
            results[path.stem] = {"error": f"unreadable: {error}"}
    devices = {side: next((r["device"] for k, r in results.items() if k.endswith(side) and "device" in r), "?")
               for side in ("gpu", "cpu")}
    lines = [f"GPU: {devices['gpu']}", f"CPU: {devices['cpu']}", "",
             "| what | GPU | CPU |", "| --- | --- | --- |"]
    lines += [f"| {what} | {gpu} | {cpu} |" for what, gpu, cpu in table_rows(results)]
    for name, data in results.items():
        if "error" in data:
            lines.append(f"\n{name}: {data['error']}")
        elif data.get("complete") is False:
            lines.append(f"\n{name}: stopped before its last variants (timeout or error; see the log)")
    return "\n".join(lines), results


# ----------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    clips = steps.add_parser("clips")
    clips.add_argument("folder", type=Path)
    clips.add_argument("--count", type=int, default=32)
    clips.add_argument("--seconds", type=int, default=60)
    extractor = steps.add_parser("extractor")
    extractor.add_argument("result", type=Path)
    extractor.add_argument("--device", default="cuda")
    extractor.add_argument("--frames", type=int, default=1024)
    extractor.add_argument("--frames-per-batch", type=int, default=128)
    extractor.add_argument("--repeats", type=int, default=3)
    extractor.add_argument("--no-compile", action="store_true")
    similarity = steps.add_parser("similarity")
    similarity.add_argument("result", type=Path)
    similarity.add_argument("--device", default="cuda")
    similarity.add_argument("--frames", type=int, default=60)
    similarity.add_argument("--targets", default="64", help="comma-separated target counts")
    similarity.add_argument("--repeats", type=int, default=5)
    cli = steps.add_parser("cli")
    cli.add_argument("result", type=Path)
    cli.add_argument("args", nargs=argparse.REMAINDER)
    table = steps.add_parser("table")
    table.add_argument("folder", type=Path)
    table.add_argument("--write", type=Path, help="also write gpu_check.md and gpu_check.json here")
    args = parser.parse_args()

    if args.step == "clips":
        print(json.dumps(make_clips(args.folder, args.count, args.seconds)))
        return
    if args.step == "table":
        text, results = render_table(args.folder)
        print(text)
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            (args.write / "gpu_check.md").write_text(text + "\n")
            (args.write / "gpu_check.json").write_text(json.dumps(results, indent=1) + "\n")
        return

    def save(result: dict) -> None:
        args.result.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result), flush=True)

    if args.step == "extractor":
        measure_extractor(save, args.device, args.frames, args.frames_per_batch, args.repeats, not args.no_compile)
    elif args.step == "similarity":
        measure_similarity(save, args.device, args.frames, [int(n) for n in args.targets.split(",")], args.repeats)
    else:
        save(run_cli(args.args[1:] if args.args[:1] == ["--"] else args.args))


if __name__ == "__main__":
    main()
