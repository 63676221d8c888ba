"""A collection where shared boilerplate would pass for copying (issue 28): made with FFmpeg from ../shared/videos.

    python benchmarks/make_boilerplate_collection.py --out DIR [--videos ../shared/videos]

Writes DIR/videos/*.mp4 and DIR/truth.json ({"pairs": [[a, b], ...]}: the true copy pairs, each sorted).
- v01..v12: twelve unrelated clips, each opening with the same 4 s intro (an animated card: FFmpeg's
  mandelbrot zoom; not bigbuckbunny, whose footage s2vs_example.mp4 holds);
  v01..v06 also carry a corner logo, v07..v12 end in a fade to black and a second of black;
- v13: an unrelated clip without the intro;
- copies: c1 a crop of v03 (80 %), c2 v01 re-encoded at CRF 40, c3 v04 played 1.25x faster, c4 an excerpt of
  v01's clip (bikes 3-8 s) inside another clip, c5 v13 with the intro put before it: its intro is the only
  part it shares with v01..v12, its body is a copy of v13's.
True pairs: (v01, c2), (v01, c4), (c2, c4), (v03, c1), (v04, c3), (v13, c5). Every other pair among the
sixteen videos opening with the intro shares only the intro: boilerplate, not a copy.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

SIZE = "640:360"
FPS = 25
INTRO_SECONDS = 4
# Clip bodies: (source file, start, seconds) pieces concatenated; thirteen unrelated bodies.
BODIES = {
    "v01": [("bikes.mp4", 0, 10)], "v02": [("carphone_pristine.mp4", 0, 4)], "v03": [("s2vs_example.mp4", 0, 12)],
    "v04": [("car-detection.mp4", 0, 10)], "v05": [("bottle-detection.mp4", 0, 10)],
    "v06": [("one-by-one-person-detection.mp4", 0, 10)],
    "v07": [("again.mkv", 0, 3), ("bird.mkv", 0, 3), ("book.mkv", 0, 4)],
    "v08": [("brother.mkv", 0, 3), ("eat.mkv", 0, 2), ("help.mkv", 0, 2)],
    "v09": [("hungry.mkv", 0, 2), ("learn.mkv", 0, 3), ("milk.mkv", 0, 2)],
    "v10": [("night.mkv", 0, 3), ("no.mkv", 0, 3), ("please.mkv", 0, 3)],
    "v11": [("school.mkv", 0, 3), ("sister.mkv", 0, 3), ("sorry.mkv", 0, 3)],
    "v12": [("student.mkv", 0, 2), ("thanks.mkv", 0, 2), ("walk.mkv", 0, 3)],
    "v13": [("want.mkv", 0, 2), ("yes.mkv", 0, 3), ("bottle-detection.mp4", 20, 5)],
}
TRUE_PAIRS = [("c2", "v01"), ("c4", "v01"), ("c2", "c4"), ("c1", "v03"), ("c3", "v04"), ("c5", "v13")]
SCALE = f"scale={SIZE}:force_original_aspect_ratio=decrease,pad={SIZE}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS}"


def ffmpeg(*args: str) -> None:
    """Run FFmpeg quietly; its error output on failure."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def piece(source: Path, start: float, seconds: float, out: Path) -> Path:
    """`seconds` of `source` from `start`, scaled and padded to 640x360 at 25 fps, no audio."""
    ffmpeg("-ss", str(start), "-t", str(seconds), "-i", str(source), "-an", "-vf", SCALE,
           "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(out))
    return out


def concat(parts: list[Path], out: Path, vf: str | None = None, crf: int = 23) -> Path:
    """The parts one after another (re-encoded), through the filter `vf` when given."""
    inputs = [arg for part in parts for arg in ("-i", str(part))]
    chain = "".join(f"[{i}:v]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=1:a=0"
    chain += f",{vf}" if vf else ""
    ffmpeg(*inputs, "-filter_complex", chain, "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p", str(out))
    return out


def make(videos: Path, out: Path) -> dict:
    """Write the collection under `out`; its ground truth."""
    target = out / "videos"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        intro = scratch / "intro.mp4"
        ffmpeg("-f", "lavfi", "-i", f"mandelbrot=s=640x360:r={FPS}", "-t", str(INTRO_SECONDS), "-c:v", "libx264",
               "-crf", "18", "-pix_fmt", "yuv420p", str(intro))
        bodies = {}
        for name, pieces in BODIES.items():
            parts = [piece(videos / source, start, seconds, scratch / f"{name}_{i}.mp4")
                     for i, (source, start, seconds) in enumerate(pieces)]
            bodies[name] = concat(parts, scratch / f"{name}_body.mp4") if len(parts) > 1 else parts[0]
        black = scratch / "black.mp4"
        ffmpeg("-f", "lavfi", "-i", f"color=c=black:s=640x360:d=1:r={FPS}", "-c:v", "libx264", "-pix_fmt",
               "yuv420p", str(black))
        for number in range(1, 13):
            name = f"v{number:02d}"
            if number <= 6:  # a corner logo over the whole video
                concat([intro, bodies[name]], target / f"{name}.mp4",
                       vf="drawbox=x=560:y=16:w=64:h=40:color=yellow@0.9:t=fill,"
                          "drawbox=x=572:y=26:w=40:h=20:color=red@0.9:t=fill")
            else:  # the body fades to black over its last second, then a second of black
                duration = sum(seconds for _, _, seconds in BODIES[name])
                faded = scratch / f"{name}_faded.mp4"
                ffmpeg("-i", str(bodies[name]), "-vf", f"fade=t=out:st={duration - 1}:d=1", "-c:v", "libx264",
                       "-pix_fmt", "yuv420p", str(faded))
                concat([intro, faded, black], target / f"{name}.mp4")
        concat([bodies["v13"]], target / "v13.mp4")
        ffmpeg("-i", str(target / "v03.mp4"), "-vf", "crop=iw*0.8:ih*0.8,scale=640:360", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(target / "c1.mp4"))
        ffmpeg("-i", str(target / "v01.mp4"), "-c:v", "libx264", "-crf", "40", "-pix_fmt", "yuv420p",
               str(target / "c2.mp4"))
        ffmpeg("-i", str(target / "v04.mp4"), "-vf", "setpts=PTS/1.25", "-r", str(FPS), "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(target / "c3.mp4"))
        excerpt = piece(videos / "bikes.mp4", 3, 5, scratch / "excerpt.mp4")
        before = piece(videos / "bottle-detection.mp4", 12, 5, scratch / "before.mp4")
        after = piece(videos / "bottle-detection.mp4", 30, 4, scratch / "after.mp4")
        concat([before, excerpt, after], target / "c4.mp4")
        concat([intro, bodies["v13"]], target / "c5.mp4", crf=30)
    truth = {"pairs": [sorted(pair) for pair in TRUE_PAIRS], "intro_seconds": INTRO_SECONDS,
             "videos": sorted(p.stem for p in target.glob("*.mp4"))}
    (out / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "videos")
    args = parser.parse_args()
    truth = make(args.videos, args.out)
    print(f"{len(truth['videos'])} videos, {len(truth['pairs'])} true copy pairs in {args.out}")


if __name__ == "__main__":
    main()
