"""loss.png: the training loss against the step, drawn from metrics.jsonl."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_write
from .metrics_log import read_metrics


def save_loss_curve(metrics: Path, out: Path, size: tuple[int, int] = (800, 480)) -> bool:
    """Draw the total loss against the step from metrics.jsonl into a PNG (written whole or not at all); False
    when there is nothing to draw."""
    rows = [r for r in read_metrics(metrics) if "loss" in r]
    if len(rows) < 2:
        return False
    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    width, height = size
    left, right, top, bottom = 70, 20, 30, 40
    low, high = min(losses), max(losses)
    high = high if high > low else low + 1.0
    x = lambda s: left + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - left - right)  # noqa: E731
    y = lambda v: top + (high - v) / (high - low) * (height - top - bottom)  # noqa: E731
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.line([(x(s), y(v)) for s, v in zip(steps, losses)], fill=(31, 119, 180), width=2)
    draw.text((left, 8), "training loss", fill="black", font=font)
    for value in (low, (low + high) / 2, high):
        draw.text((4, y(value) - 7), f"{value:.3g}", fill="black", font=font)
    for s in (steps[0], steps[-1]):
        draw.text((x(s) - 10, height - bottom + 6), str(s), fill="black", font=font)
    draw.text((width // 2 - 15, height - 20), "step", fill="black", font=font)
    with atomic_write(out, "wb") as handle:
        image.save(handle, format="PNG")
    return True
