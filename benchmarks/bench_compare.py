"""End-to-end `s2vs compare` of two 60-s clips: wall time split into start-up, decode, extract, compare;
and what finding every copied part (matches) adds to it.

    python benchmarks/bench_compare.py [--videos ../shared/videos] [--repeats 3]

The matches' cost is measured in one process: `compare_videos` with and without `locate_matches`
(replaced by a no-op), alternated `--repeats` times, medians compared.

The clips are cut (re-encoded, native frame rate) from one-by-one-person-detection.mp4 in
../shared/videos: 0-60 s and 60-120 s. Weights are seeded random ones (the published weights are not
needed for timing; loading them from a file takes about as long as building the random ones).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def cut_clips(source: Path, out: Path) -> tuple[Path, Path]:
    import av

    from media import read_frames, write_video

    with av.open(str(source)) as container:
        rate = round(float(container.streams.video[0].average_rate))
    first = write_video(out / "first.mp4", read_frames(source, rate, seconds=60), rate)
    second = write_video(out / "second.mp4", read_frames(source, rate, seconds=60, start=60), rate)
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # Start-up: a fresh interpreter importing what `s2vs compare` imports before it works.
    probe = ("import time; t = time.perf_counter(); import s2vs_cli.cli, s2vs_cli.jobs.compare, s2vs_cli.models.loading, "
             "s2vs_cli.report.heatmap; print(time.perf_counter() - t)")
    imported = float(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                    text=True).stdout)
    from s2vs_cli.jobs.compare import compare_videos
    from s2vs_cli.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        a, b = cut_clips(args.videos / "one-by-one-person-detection.mp4", Path(tmp))
        weights = ["--backbone-weights", "random", "--pca", "random", "--model", "random"]
        for precision in ("fp32", "auto"):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "s2vs_cli", "compare", str(a), str(b), *weights, "--precision",
                            precision, "--json"], check=True, capture_output=True)
            wall = time.perf_counter() - started

            started = time.perf_counter()
            runtime = Runtime.start("cpu", precision).load_models("random", "random", "random")
            loaded = time.perf_counter() - started
            run_precision = runtime.precision
            result = compare_videos(a, b, runtime)
            t = result.timings
            print(f"{precision} ({run_precision}), {result.frames[0]}x{result.frames[1]} frames: "
                  f"CLI wall {wall:.1f} s; start-up: imports {imported:.1f} s + models {loaded:.1f} s;"
                  f" decode {t['decode']:.1f} s, extract {t['extract']:.1f} s, compare {t['compare']:.2f} s")
            matches_cost(a, b, runtime, args.repeats)


def matches_cost(a: Path, b: Path, runtime, repeats: int) -> None:
    """compare_videos' wall time with and without locate_matches, alternated in one process."""
    import numpy as np

    from s2vs_cli.jobs import compare
    from s2vs_cli.scoring.localization import locate_matches

    walls: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for with_matches in (True, False):
            compare.locate_matches = locate_matches if with_matches else (lambda *args, **kwargs: [])
            started = time.perf_counter()
            result = compare.compare_videos(a, b, runtime)
            walls[with_matches].append(time.perf_counter() - started)
    compare.locate_matches = locate_matches
    started = time.perf_counter()
    matches = locate_matches(result.frame_similarity, result.query_times, result.target_times, 1.0)
    alone = time.perf_counter() - started
    with_, without = np.median(walls[True]), np.median(walls[False])
    print(f"  matches ({len(matches)} found): locate_matches {alone * 1e3:.1f} ms; compare_videos median of "
          f"{repeats} {with_:.2f} s with them, {without:.2f} s without ({(with_ / without - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
