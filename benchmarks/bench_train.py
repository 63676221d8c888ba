"""Training speed on this machine, and whether a short CPU training run helps (issue 6).

1. Iterations/s and frames/s of `s2vs train` with the small configuration (examples/train_cpu_small.yaml:
   6 videos x 2 views x 8 frames = 96 frames a step), at the default precision and in fp32. The first
   two steps (start-up) are left out.
2. mAP of edited copies against unrelated clips, with the untrained network (the seeded initial
   weights training starts from) and after a short training run on the frames of ../shared/videos,
   evaluated the same way. Queries: the 7 longest clips. Database: their edited copies (mirrored, centre
   crop 70%, brighter, blurred, captioned, re-encoded at CRF 35; never seen in training) and the 20
   gesture clips.
   The backbone is seeded random weights (ImageNet weights cannot be downloaded here). Its region vectors
   all point in nearly one direction (raw Chamfer 0.98-0.99 between any two clips, whitened or not by a
   random projection), which leaves the network nothing to learn from; so the whitening is fitted on the
   training frames' own vectors with `s2vs fit-pca`, as a user without the published whitening would.

3. Data loading alone (--loading): weak and strong views of 64-frame windows (frames of the sample clips at
   the training size, 256 px short side) with GT,FT,TT, in one process and one torch thread, as a
   data-loading worker makes them; frames/s counts the frames of both views. FT alone is timed too.

    python benchmarks/bench_train.py [--steps 40] [--lr 3e-4] [--skip-speed] [--skip-quality] [--emoji-alpha]
    python benchmarks/bench_train.py --loading [--items 24]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from s2vs_cli.config import TrainConfig
from s2vs_cli.jobs.extract_frames import FrameOptions, export_frames
from s2vs_cli.media.inputs import collect_inputs
from s2vs_cli.models.loading import load_extractor
from s2vs_cli.jobs.train import load_training_videos, train, training_evaluator
from s2vs_cli.progress import CallbackProgress
from s2vs_cli.runtime import Runtime
from s2vs_cli.training.metrics_log import read_metrics

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
QUERIES = ("bikes", "car-detection", "bottle-detection", "one-by-one-person-detection", "s2vs_example",
           "bigbuckbunny", "carphone_pristine")
SMALL = dict(batch_size=6, window_size=8, run_length="steps", backbone_weights="random", device="cpu", workers=2, frames_per_batch=96,
             log_every=1, save_every=10_000)


def edited_copy(source: Path, target: Path, seconds: float = 20.0) -> None:
    """An edited copy: mirrored, centre crop 70%, brighter, blurred, captioned, re-encoded at 5 fps (CRF 35)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = None
        next_time = 0.0
        for frame in inp.decode(video=0):
            t = float(frame.time or 0.0)
            if t >= seconds:
                break
            if t < next_time:
                continue
            next_time += 0.2
            image = frame.to_image()
            w, h = image.size
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop(
                (int(w * 0.15), int(h * 0.15), int(w * 0.85), int(h * 0.85)))
            image = Image.eval(image, lambda v: min(255, int(v * 1.3))).filter(ImageFilter.GaussianBlur(1.5))
            draw = ImageDraw.Draw(image)
            draw.text((image.width // 10, image.height // 2), "BREAKING NEWS", fill=(255, 255, 0),
                      font=ImageFont.load_default(size=max(12, image.height // 8)))
            array = np.asarray(image)[:image.height // 2 * 2, :image.width // 2 * 2]
            if stream is None:
                stream = out.add_stream("libx264", rate=5, options={"crf": "35", "preset": "ultrafast"})
                stream.height, stream.width, stream.pix_fmt = array.shape[0], array.shape[1], "yuv420p"
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
        out.mux(stream.encode())


def extract_training_frames(out: Path) -> None:
    found = collect_inputs([VIDEOS])
    export_frames(found.inputs, out, FrameOptions(fps=1.0, workers=2))


def fit_whitening(frames: Path, work: Path) -> Path:
    """Whitening fitted on the random backbone's raw region vectors of the training frames."""
    cli = [sys.executable, "-m", "s2vs_cli"]
    subprocess.run([*cli, "extract-features", str(frames), "--loader", "frames", "--backbone-weights", "random",
                    "--pca", "none", "-o", str(work / "raw.h5"), "-q"], check=True)
    subprocess.run([*cli, "fit-pca", str(work / "raw.h5"), "-o", str(work / "pca.pth"), "-q"], check=True)
    return work / "pca.pth"


def _runtime(cfg: TrainConfig, extractor) -> Runtime:
    """A runtime for cfg's device and precision holding the extractor loaded once for every run."""
    runtime = Runtime.start(cfg.device, cfg.precision, seed=cfg.seed)
    runtime.extractor = extractor
    return runtime


def speed(frames: Path, work: Path, extractor, pca: Path) -> None:
    print(f"training speed, small config ({SMALL['batch_size']} videos x 2 views x {SMALL['window_size']} frames "
          f"= {2 * SMALL['batch_size'] * SMALL['window_size']} frames a step), {torch.get_num_threads()} torch threads")
    for precision in ("auto", "fp32"):
        cfg = TrainConfig(data=str(frames), experiment_path=str(work / f"speed-{precision}"), iterations=12,
                          precision=precision, pca=str(pca), **SMALL)
        times: list[float] = []  # when each step ended (the report of step 0, before the first, is left out)
        progress = CallbackProgress(update=lambda done, total: times.append(time.perf_counter()) if done else None)
        train(cfg, *load_training_videos(cfg), _runtime(cfg, extractor), progress)
        per_step = float(np.median(np.diff(times[1:])))  # steps 3..12: start-up left out
        frames_per_step = 2 * cfg.batch_size * cfg.window_size
        print(f"  {precision:5s}: {1 / per_step:.2f} iterations/s, {frames_per_step / per_step:.1f} frames/s "
              f"({per_step:.2f} s a step)")


def quality(frames: Path, work: Path, extractor, pca: Path, steps: int, lr: float, emoji_alpha: bool = False) -> None:
    evaluation = work / "evaluation"
    evaluation.mkdir()
    gestures = [p for p in sorted(VIDEOS.glob("*.mkv"))]
    for name in QUERIES:
        source = next(VIDEOS.glob(f"{name}.*"))
        (evaluation / f"{name}{source.suffix}").symlink_to(source)
        edited_copy(source, evaluation / f"{name}-copy.mp4")
    for path in gestures:
        (evaluation / path.name).symlink_to(path)
    gt = {"queries": list(QUERIES), "database": [f"{q}-copy" for q in QUERIES] + [p.stem for p in gestures],
          "positives": {q: [f"{q}-copy"] for q in QUERIES}}
    (work / "gt.json").write_text(json.dumps(gt))
    cfg = TrainConfig(data=str(frames), experiment_path=str(work / "quality"), iterations=steps, lr=lr,
                      warmup_iterations=10, decay_iterations=steps, eval_every=max(1, steps // 5),
                      eval_ground_truth=str(work / "gt.json"), eval_dataset_path=str(evaluation),
                      eval_pattern="{id}.*", pca=str(pca), **SMALL)
    cfg.augmentation.overlay_emoji_alpha = emoji_alpha
    runtime = _runtime(cfg, extractor)
    evaluator = training_evaluator(cfg, runtime)
    from s2vs_cli.datasets import evaluate_custom
    from s2vs_cli.scoring.retrieval import VideoScorer, score_store

    raw = score_store(str(evaluator.features), evaluator.benchmark.queries, evaluator.benchmark.database,
                      VideoScorer(None, torch.device("cpu")))
    started = time.perf_counter()
    result = train(cfg, *load_training_videos(cfg), runtime, evaluate=evaluator)
    rows = [r for r in read_metrics(result.experiment / "metrics.jsonl") if "eval_mAP" in r]
    losses = [r["loss"] for r in read_metrics(result.experiment / "metrics.jsonl") if "loss" in r]
    print(f"edited copies vs unrelated clips ({len(QUERIES)} queries, {len(gt['database'])} database videos), "
          f"{steps} training steps (lr {lr:g}) in {time.perf_counter() - started:.0f} s:")
    print(f"  features only (reference):  mAP {evaluate_custom(evaluator.benchmark, raw.similarities).metrics['mAP']:.3f}")
    for row in rows:
        label = "untrained network" if row["step"] == 0 else f"after {row['step']} steps"
        print(f"  {label:26s}  mAP {row['eval_mAP']:.3f}  uAP {row['eval_uAP']:.3f}")
    tenth = max(1, len(losses) // 10)
    print(f"  training loss: first {tenth} steps {np.mean(losses[:tenth]):.3f}, last {tenth} steps "
          f"{np.mean(losses[-tenth:]):.3f}")


def _training_windows(count: int, window: int) -> list[torch.Tensor]:
    """`count` windows of 2·`window` frames from the sample clips, resized to the training short side."""
    from s2vs_cli.training.clips import TRAINING_SHORT_SIDE

    windows = []
    for path in sorted(p for p in VIDEOS.iterdir() if p.suffix in (".mp4", ".mkv"))[:count]:
        frames = []
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                image = frame.to_image()
                scale = TRAINING_SHORT_SIDE / min(image.size)
                frames.append(np.asarray(image.resize((round(image.width * scale), round(image.height * scale)))))
                if len(frames) == 2 * window:
                    break
        while len(frames) < 2 * window:  # a short clip is looped, as training does
            frames += frames[:2 * window - len(frames)]
        windows.append(torch.from_numpy(np.stack(frames)))
    return windows


def loading(items: int, window: int = 32) -> None:
    """Frames/s of the weak and strong views (GT,FT,TT) and of FT alone, in one process and one thread."""
    import os

    from s2vs_cli.config import AugmentationOptions
    from s2vs_cli.training.augmentations import strong_view, weak_view
    from s2vs_cli.training.overlays import frame_transforms

    torch.set_num_threads(1)  # as in a data-loading worker
    options, augmentations = AugmentationOptions(), frozenset({"GT", "FT", "TT"})
    windows = _training_windows(items, window)
    generator = torch.Generator().manual_seed(0)
    weak_view(windows[0], window, options, generator)  # warm-up: fonts, caches, first-call costs
    strong_view(windows[0], window, options, augmentations, generator)
    started = time.perf_counter()
    for clip in windows:
        weak_view(clip, window, options, generator)
        strong_view(clip, window, options, augmentations, generator)
    views = time.perf_counter() - started
    crops = [weak_view(clip, window, options, generator) for clip in windows]
    started = time.perf_counter()
    for frames in crops:
        frame_transforms(frames, options, generator)
    ft = time.perf_counter() - started
    frames = len(windows) * window
    print(f"data loading, {len(windows)} windows of {2 * window} frames, 1 thread "
          f"(load average {os.getloadavg()[0]:.2f}):")
    print(f"  weak + strong views (GT,FT,TT): {2 * frames / views:.0f} frames/s ({views / len(windows) * 1000:.0f} ms "
          f"an item)")
    print(f"  FT alone on 224 px frames:      {frames / ft:.0f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--emoji-alpha", action="store_true",
                        help="train with overlay_emoji_alpha: true (emoji through their alpha; default: the original's squares)")
    parser.add_argument("--loading", action="store_true", help="time data loading alone (views), then stop")
    parser.add_argument("--items", type=int, default=24, help="windows (one per clip, at most 27) --loading times")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        raise SystemExit(f"{VIDEOS} not found: the ../shared folder is not beside the checkout")
    if args.loading:
        loading(args.items)
        return
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        extract_training_frames(work / "frames")
        pca = fit_whitening(work / "frames", work)
        extractor = load_extractor("random", str(pca), "cpu")
        if not args.skip_speed:
            speed(work / "frames", work, extractor, pca)
        if not args.skip_quality:
            quality(work / "frames", work, extractor, pca, args.steps, args.lr, args.emoji_alpha)


if __name__ == "__main__":
    main()
