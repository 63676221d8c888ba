"""Score normalization with a noise set (issue 14): µAP with and without it, for several k and β.

A planted-copy set built from ../shared/videos, the long clips cut into 6-s pieces. The database: the 20
sign-language clips (one room, a different person or gesture each), bikes, bigbuckbunny, carphone and the
pieces of s2vs_example and bottle-detection (31 videos). The queries: three edited copies (centre crop
70-90%, per-channel colour gains and a brightness shift, re-encoded at CRF 28-40) of each database video
but five (78 queries, one copy each in the database). The noise: the 28 pieces of two other clips
(one-by-one-person-detection, car-detection), unrelated to every query. Videos of one room or one
camera resemble each other, so a query is close to several non-copies too: the case normalization is for.

Features: features-only mode (raw Chamfer, no network) with a seeded random ResNet-50 and a PCA whitening
fitted with `s2vs fit-pca` on all the raw features (set and noise): `extract-features --pca none`,
`fit-pca`, then `extract-features --pca PCA.pth`, all through the command line as a user runs them.
µAP pools every (query, database video) pair (the custom benchmark's uAP); mAP is shown beside it.

    python benchmarks/bench_normalization.py --folder DIR [--videos ../shared/videos] [--mixed-noise]

`--mixed-noise` deals every video at random between the database and the noise instead (24 queries, one
copy each; 36 database and 23 noise videos), so the noise holds other pieces of the queries' own clips.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

SEED = 0
PIECE_SECONDS = 6
RATE = 10  # frames per second of the written clips
KS = (1, 2, 3, 5, 10)
# The noise: every piece of these clips, none of which the set holds (videos unrelated to the queries).
NOISE_SOURCES = ("one-by-one-person-detection", "car-detection")
EDITS = 3      # edited copies (queries) of each copied database video
UNCOPIED = 5   # database videos without a copy
BETAS = (0.5, 0.75, 1.0, 1.25, 1.5)


def read_frames(path: Path, start: float = 0.0, seconds: float | None = None) -> list[np.ndarray]:
    """RGB frames of `path` resampled to RATE fps, from `start` for `seconds` (or to the end)."""
    frames, next_time = [], start
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            t = float(frame.time or 0.0)
            while t >= next_time and (seconds is None or next_time < start + seconds):
                frames.append(frame.to_ndarray(format="rgb24"))
                next_time += 1.0 / RATE
            if seconds is not None and next_time >= start + seconds:
                break
    return frames


def write_video(path: Path, frames: list[np.ndarray], crf: int) -> None:
    """H.264 at RATE fps (sizes rounded down to even)."""
    height, width = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"crf": str(crf), "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def edited(frames: list[np.ndarray], rng: np.random.Generator) -> tuple[list[np.ndarray], int]:
    """A copy as uploads make them: centre crop, colour gains and brightness, and (returned) a CRF to encode at."""
    keep, gains = rng.uniform(0.7, 0.9), rng.uniform(0.8, 1.2, 3)
    shift = rng.uniform(-20, 20)
    out = []
    for image in frames:
        h, w = image.shape[:2]
        ch, cw = int(h * keep), int(w * keep)
        crop = image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw].astype(np.float32)
        out.append(np.clip(crop * gains + shift, 0, 255).astype(np.uint8))
    return out, int(rng.integers(28, 41))


def sources(videos: Path) -> list[tuple[str, Path, float, float | None]]:
    """(id, file, start, seconds) of every video of the set: whole short clips, 6-s pieces of the long ones."""
    out = []
    for path in sorted([*videos.glob("*.mp4"), *videos.glob("*.mkv")]):
        with av.open(str(path)) as container:
            duration = float(container.duration or 0) / 1e6
        if duration < 2 * PIECE_SECONDS:
            out.append((path.stem, path, 0.0, None))
            continue
        for piece in range(int(duration // PIECE_SECONDS)):
            out.append((f"{path.stem}-{piece:02d}", path, piece * PIECE_SECONDS, PIECE_SECONDS))
    return out


def make(folder: Path, videos: Path) -> None:
    """Write set/ (database videos and the query copies), noise/ and gt.json under `folder`."""
    rng = np.random.default_rng(SEED)
    (folder / "set").mkdir(parents=True, exist_ok=True)
    (folder / "noise").mkdir(exist_ok=True)
    database, queries, positives, noise = [], [], {}, 0
    found = sources(videos)
    for index in rng.permutation(len(found)):
        video_id, path, start, seconds = found[index]
        frames = read_frames(path, start, seconds)
        if path.stem in NOISE_SOURCES:
            write_video(folder / "noise" / f"{video_id}.mp4", frames, crf=18)
            noise += 1
            continue
        write_video(folder / "set" / f"{video_id}.mp4", frames, crf=18)
        database.append(video_id)
        if len(database) > UNCOPIED:  # the first few dealt stay without a copy
            for edit in range(EDITS):
                copy, crf = edited(frames, rng)
                query = f"copy{edit}-{video_id}"
                write_video(folder / "set" / f"{query}.mp4", copy, crf=crf)
                queries.append(query)
                positives[query] = [video_id]
    (folder / "gt.json").write_text(json.dumps({"queries": queries, "database": database, "positives": positives}))
    print(f"{len(queries)} queries, {len(database)} database videos, {noise} noise videos", file=sys.stderr)


def make_mixed(folder: Path, videos: Path) -> None:
    """The variant whose noise holds the queries' own scenes: every video dealt at random (2 in 5 to the
    noise, the others to the database), one edited copy of two database videos in three as the queries."""
    rng = np.random.default_rng(SEED)
    found = sources(videos)
    order = rng.permutation(len(found))
    noise_count = len(found) * 2 // 5
    (folder / "set").mkdir(parents=True, exist_ok=True)
    (folder / "noise").mkdir(exist_ok=True)
    database, queries, positives = [], [], {}
    for rank, index in enumerate(order):
        video_id, path, start, seconds = found[index]
        frames = read_frames(path, start, seconds)
        if rank < noise_count:
            write_video(folder / "noise" / f"{video_id}.mp4", frames, crf=18)
            continue
        write_video(folder / "set" / f"{video_id}.mp4", frames, crf=18)
        database.append(video_id)
        if rank % 3 != 0:
            copy, crf = edited(frames, rng)
            write_video(folder / "set" / f"copy-{video_id}.mp4", copy, crf=crf)
            queries.append(f"copy-{video_id}")
            positives[f"copy-{video_id}"] = [video_id]
    (folder / "gt.json").write_text(json.dumps({"queries": queries, "database": database, "positives": positives}))
    print(f"{len(queries)} queries, {len(database)} database videos, {noise_count} noise videos", file=sys.stderr)


def s2vs(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "s2vs_cli", *args], check=True)


def extract(folder: Path) -> None:
    """Raw features, the whitening fitted on the database and noise videos, whitened features."""
    random = ["--backbone-weights", "random", "-j", "0", "-q"]
    for name in ("set", "noise"):
        s2vs("extract-features", str(folder / name), "-o", str(folder / f"{name}_raw.hdf5"), "--pca", "none", *random)
    # Fitted on every video, the query copies included (a user fits on the collection they search).
    s2vs("fit-pca", str(folder / "noise_raw.hdf5"), str(folder / "set_raw.hdf5"), "-o", str(folder / "pca.pth"), "-q")
    for name in ("set", "noise"):
        s2vs("extract-features", str(folder / name), "-o", str(folder / f"{name}.hdf5"), "--pca",
             str(folder / "pca.pth"), *random)


def measure(folder: Path) -> dict:
    """µAP and mAP without normalization and for each (k, β)."""
    from s2vs_cli.datasets import evaluate_custom, load_custom_ground_truth
    from s2vs_cli.scoring.normalization import NoiseSet, noise_offsets, normalize_similarities
    from s2vs_cli.scoring.retrieval import VideoScorer, read_video, score_store
    from s2vs_cli.storage.store import FeatureStore

    gt = load_custom_ground_truth(folder / "gt.json")
    scorer = VideoScorer(None, torch.device("cpu"))
    similarities = score_store(str(folder / "set.hdf5"), gt.queries, gt.database, scorer).similarities
    with FeatureStore(folder / "set.hdf5") as store, NoiseSet(folder / "noise.hdf5", 1, 1.0) as noise:
        prepared = {q: scorer.prepare_query(read_video(store, q)) for q in gt.queries}
        to_noise = noise.similarities(prepared, scorer)

    def metrics(scores) -> dict:
        result = evaluate_custom(gt, scores).metrics
        return {"uAP": round(result["uAP"], 4), "mAP": round(result["mAP"], 4)}

    rows = {"none": metrics(similarities)}
    for k in KS:
        for beta in BETAS:
            offsets = noise_offsets(to_noise, k, beta)
            rows[f"k={k} beta={beta:g}"] = metrics(normalize_similarities(similarities, offsets))
    return {"queries": len(gt.queries), "database": len(gt.database), "noise": len(noise.ids), "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "videos")
    parser.add_argument("--mixed-noise", action="store_true",
                        help="deal the noise from the same clips as the set (it then holds the queries' scenes)")
    args = parser.parse_args()
    started = time.perf_counter()
    if not (args.folder / "gt.json").is_file():
        (make_mixed if args.mixed_noise else make)(args.folder, args.videos)
    if not (args.folder / "noise.hdf5").is_file():
        extract(args.folder)
    report = measure(args.folder)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
