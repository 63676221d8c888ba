"""Build a demo pair for `s2vs compare`: an original clip and a longer 'suspect' video that hides an
edited copy of part of it (cropped, colour-shifted, re-encoded at low quality).

    python examples/make_demo_pair.py OUT_DIR

Writes OUT_DIR/original.mp4 (20 s) and OUT_DIR/suspect.mp4 (40 s): seconds 4-16 of the original appear,
edited, at seconds 10-22 of the suspect. Everything is drawn here (moving shapes), so no download is needed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np

RATE, WIDTH, HEIGHT = 25, 320, 240


def scene(seed: int, seconds: float) -> list[np.ndarray]:
    """Frames of a synthetic scene: a colour gradient with shapes moving across it."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    background = (top + (bottom - top) * (ys[..., None] / HEIGHT)).astype(np.uint8)
    shapes = [(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(-60, 60), rng.uniform(-40, 40),
               rng.uniform(15, 45), rng.integers(0, 256, 3), rng.random() < 0.5) for _ in range(6)]
    frames = []
    for i in range(int(seconds * RATE)):
        t = i / RATE
        frame = background.copy()
        for x0, y0, vx, vy, size, colour, round_shape in shapes:
            x, y = (x0 + vx * t) % WIDTH, (y0 + vy * t) % HEIGHT
            inside = ((xs - x) ** 2 + (ys - y) ** 2 < size ** 2) if round_shape else \
                (abs(xs - x) < size) & (abs(ys - y) < size * 0.6)
            frame[inside] = colour
        frames.append(frame)
    return frames


def edit(frame: np.ndarray) -> np.ndarray:
    """Crop 85% of the centre, scale back up, shift the colours: a typical re-upload."""
    h, w = int(HEIGHT * 0.85), int(WIDTH * 0.85)
    top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
    rows = top + np.arange(HEIGHT) * h // HEIGHT
    cols = left + np.arange(WIDTH) * w // WIDTH
    shifted = frame[rows][:, cols].astype(np.int16) + np.array([20, -10, 15])
    return np.clip(shifted, 0, 255).astype(np.uint8)


def write(path: Path, frames: list[np.ndarray], crf: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    original = scene(1, 8) + scene(2, 6) + scene(3, 6)
    excerpt = [edit(f) for f in original[4 * RATE:16 * RATE]]
    suspect = scene(10, 10) + excerpt + scene(11, 18)
    write(out / "original.mp4", original, crf=20)
    write(out / "suspect.mp4", suspect, crf=34)
    print(f"wrote {out / 'original.mp4'} (20 s) and {out / 'suspect.mp4'} (40 s); "
          "original 0:04-0:16 appears, edited, at suspect 0:10-0:22")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
