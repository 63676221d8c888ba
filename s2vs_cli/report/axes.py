"""The heatmap's time axes (clock-style tick labels at a readable spacing) and its colour bar."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .colors import FRAME_COLOR, TEXT_COLOR, colormap
from .layout import (COLORBAR_GAP, COLORBAR_WIDTH, LEFT, PAD, TICK_LENGTH, X_TICK_SPACING, Y_TICK_SPACING,
                     PlotGeometry)
from .text import LABEL_SIZE, TICK_SIZE, default_font, draw_text, draw_vertical_text, fit, printable

# Tick steps in seconds that read naturally on a clock.
_NICE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def format_seconds(seconds: float, precision: int = 3) -> str:
    """Clock-style time label: 0, 30, 2.5, 1:30, 1:00:00 (at most `precision` decimals, trailing zeros dropped)."""
    sign = "-" if seconds < 0 else ""
    total = round(abs(float(seconds)), precision)
    whole = math.floor(total)
    fraction = f"{total - whole:.{precision}f}".rstrip("0").rstrip(".")[1:]  # "" or ".5"
    if total < 60:
        return f"{sign}{whole}{fraction}"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{secs:02d}{fraction}"
    return f"{sign}{minutes}:{secs:02d}{fraction}"


def frame_position(seconds: float, edges: np.ndarray) -> float:
    """Fractional frame position of a time, interpolating inside the frame that contains it."""
    frames = len(edges) - 1
    i = int(np.clip(np.searchsorted(edges, seconds, side="right") - 1, 0, frames - 1))
    span = edges[i + 1] - edges[i]
    fraction = (seconds - edges[i]) / span if span > 0 else 0.0
    return i + float(np.clip(fraction, 0.0, 1.0))


def _ticks(times: np.ndarray, edges: np.ndarray, length_px: int, spacing_px: int) -> list[tuple[float, str]]:
    """(frame position, label) pairs at a nice step that leaves labels at least spacing_px apart."""
    max_ticks = max(2, length_px // spacing_px)
    times = np.asarray(times, dtype=np.float64)
    if np.all(np.diff(times) >= 0):
        step = _nice_step((edges[-1] - edges[0]) / max_ticks)
        first = math.ceil(edges[0] / step - 1e-9)
        last = math.floor(edges[-1] / step + 1e-9)
        values = [round(k * step, 6) for k in range(first, last + 1)]
        return [(frame_position(v, edges), format_seconds(v)) for v in values]
    # Times jump back (e.g. a short video repeated): place ticks by frame and label them with that frame's time.
    frame_step = _nice_integer(len(times) / max_ticks)
    return [(float(i), format_seconds(times[i])) for i in range(0, len(times), frame_step)]


def _nice_step(target: float) -> float:
    for step in _NICE_STEPS:
        if step >= target:
            return float(step)
    return 3600.0 * _nice_integer(target / 3600.0)


def _nice_integer(target: float) -> int:
    """Smallest of 1, 2, 5, 10, 20, 50, ... that is at least target."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= target:
                return factor * magnitude
        magnitude *= 10


def draw_x_axis(draw: ImageDraw.ImageDraw, geometry: PlotGeometry, times: np.ndarray, edges: np.ndarray,
                label: str) -> None:
    """Target time ticks below the plot, and the axis title."""
    font = default_font(TICK_SIZE)
    for position, text in _ticks(times, edges, geometry.width, X_TICK_SPACING):
        x = min(geometry.x_at(position), geometry.right - 1)
        draw.line([(x, geometry.bottom + 1), (x, geometry.bottom + TICK_LENGTH)], fill=FRAME_COLOR)
        draw_text(draw, (x, geometry.bottom + TICK_LENGTH + 4), text, font, TEXT_COLOR, "mt")
    font = default_font(LABEL_SIZE)
    title = fit(draw, printable(f"{label} time (s)", font), font, geometry.width + LEFT)
    draw_text(draw, (geometry.left + geometry.width / 2, geometry.bottom + 34), title, font, TEXT_COLOR, "mt")


def draw_y_axis(image: Image.Image, draw: ImageDraw.ImageDraw, geometry: PlotGeometry, times: np.ndarray,
                edges: np.ndarray, label: str) -> None:
    """Query time ticks left of the plot (time runs downward), and the rotated axis title."""
    font = default_font(TICK_SIZE)
    for position, text in _ticks(times, edges, geometry.height, Y_TICK_SPACING):
        y = min(geometry.y_at(position), geometry.bottom - 1)
        draw.line([(geometry.left - TICK_LENGTH - 1, y), (geometry.left - 2, y)], fill=FRAME_COLOR)
        draw_text(draw, (geometry.left - TICK_LENGTH - 5, y), text, font, TEXT_COLOR, "rm")
    font = default_font(LABEL_SIZE)
    title = fit(draw, printable(f"{label} time (s)", font), font, geometry.height + geometry.top)
    draw_vertical_text(image, (PAD, geometry.top + geometry.height / 2), title, font, TEXT_COLOR)


def draw_colorbar(draw: ImageDraw.ImageDraw, geometry: PlotGeometry, low: float, high: float) -> None:
    """The colour scale right of the plot, labelled with the map's lowest and highest value."""
    x0 = geometry.right + COLORBAR_GAP
    x1 = x0 + COLORBAR_WIDTH
    colors = colormap(np.linspace(1.0, 0.0, geometry.height))  # top of the bar = highest value
    for offset, color in enumerate(colors):
        draw.line([(x0, geometry.top + offset), (x1 - 1, geometry.top + offset)], fill=tuple(int(c) for c in color))
    draw.rectangle([x0 - 1, geometry.top - 1, x1, geometry.bottom], outline=FRAME_COLOR, width=1)
    font = default_font(TICK_SIZE)
    draw_text(draw, (x1 + 6, geometry.top), f"{high:.3g}", font, TEXT_COLOR, "lt")
    draw_text(draw, (x1 + 6, geometry.bottom - 1), f"{low:.3g}", font, TEXT_COLOR, "lb")
