"""Draw a frame-to-frame similarity map as a PNG image, with time axes, a colour bar and the copied segment.

Rows of the map are query frames (time runs downward, like a matrix), columns are target frames.
Only numpy and Pillow are used, so the renderer works wherever the rest of the tool does. The layout is
in layout.py, the axes and colour bar in axes.py, colours in colors.py and text drawing in text.py.
"""
from __future__ import annotations

from collections.abc import Sequence

import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_write
from ..scoring.localization import SegmentTimes
from .axes import draw_colorbar, draw_x_axis, draw_y_axis, format_seconds, frame_position
from .colors import BACKGROUND, FRAME_COLOR, SEGMENT_COLOR, SEGMENT_HALO, TEXT_COLOR, colormap
from .layout import PAD, TITLE_LINE, PlotGeometry, plot_geometry
from .text import LABEL_SIZE, TITLE_SIZE, default_font, draw_text, fit, printable, text_width


def render_heatmap(
    similarity: np.ndarray,
    query_times: np.ndarray,
    target_times: np.ndarray,
    segment: SegmentTimes | None = None,
    title: str = "",
    query_label: str = "query",
    target_label: str = "target",
    value_range: tuple[float, float] | None = None,
    matches: Sequence[SegmentTimes] = (),
) -> Image.Image:
    """Draw a similarity map (rows = query frames, columns = target frames) as an RGB image."""
    sim = _as_map(similarity)
    rows, cols = sim.shape
    query_edges = _time_edges(query_times, rows, "query_times")
    target_edges = _time_edges(target_times, cols, "target_times")
    for part in (segment, *matches):
        _check_segment(part)
    low, high = _value_range(sim, value_range)
    geometry = plot_geometry(sim.shape, title=title, segment=segment)

    image = Image.new("RGB", (geometry.image_width, geometry.image_height), BACKGROUND)
    image.paste(_map_image(sim, geometry, low, high), (geometry.left, geometry.top))
    draw = ImageDraw.Draw(image)
    # The frame sits just outside the plot so it never hides a cell.
    draw.rectangle(
        [geometry.left - 1, geometry.top - 1, geometry.right, geometry.bottom], outline=FRAME_COLOR, width=1
    )

    draw_x_axis(draw, geometry, target_times, target_edges, target_label)
    draw_y_axis(image, draw, geometry, query_times, query_edges, query_label)
    draw_colorbar(draw, geometry, low, high)

    y = PAD
    if title:
        _heading(draw, geometry, y, title, default_font(TITLE_SIZE), TEXT_COLOR)
        y += TITLE_LINE
    others = [m for m in matches if m != segment]  # every other copied part: a thinner outline
    for part in others:
        _outline(draw, geometry, part, query_edges, target_edges, width=1)
    if segment is not None:
        _draw_segment(draw, geometry, segment, query_edges, target_edges, query_label, target_label, y,
                      len(others))
    return image


def save_heatmap(
    path: str | os.PathLike[str],
    similarity: np.ndarray,
    query_times: np.ndarray,
    target_times: np.ndarray,
    segment: SegmentTimes | None = None,
    title: str = "",
    query_label: str = "query",
    target_label: str = "target",
    value_range: tuple[float, float] | None = None,
    matches: Sequence[SegmentTimes] = (),
) -> None:
    """Render the similarity map and write it to `path` as a PNG (whole or not at all), creating parent folders."""
    image = render_heatmap(
        similarity,
        query_times,
        target_times,
        segment=segment,
        title=title,
        query_label=query_label,
        target_label=target_label,
        value_range=value_range,
        matches=matches,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        image.save(handle, format="PNG")


# --- input checks -------------------------------------------------------------------------------------------


def _as_map(similarity: np.ndarray) -> np.ndarray:
    sim = np.asarray(similarity)
    if sim.ndim != 2:
        raise ValueError(f"similarity map must be 2-D [query frames, target frames], got shape {sim.shape}")
    if sim.size == 0:
        raise ValueError(f"similarity map must be non-empty, got shape {sim.shape}")
    # Keep float32 as is: a long video pair can give a map of hundreds of MB, so avoid a float64 copy.
    if sim.dtype not in (np.float32, np.float64):
        sim = sim.astype(np.float32 if sim.dtype == np.float16 else np.float64)
    return sim


def _time_edges(times: np.ndarray, frames: int, name: str) -> np.ndarray:
    """Frame boundaries in seconds, [frames + 1]: each frame's time, then one step past the last one."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) != frames:
        raise ValueError(f"{name} must hold one time per frame ({frames}), got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} must be finite")
    steps = np.diff(times)
    positive = steps[steps > 0]
    step = float(np.median(positive)) if len(positive) else 1.0
    # A running maximum turns times that jump back (a repeated short video) into a usable, non-decreasing axis.
    return np.append(np.maximum.accumulate(times), times.max() + step)


def _check_segment(segment: SegmentTimes | None) -> None:
    if segment is None:
        return
    values = (segment.query_start, segment.query_end, segment.target_start, segment.target_end)
    if not all(math.isfinite(float(t)) for t in values):
        raise ValueError(f"segment times must be finite, got {segment}")


def _value_range(sim: np.ndarray, value_range: tuple[float, float] | None) -> tuple[float, float]:
    if value_range is not None:
        low, high = float(value_range[0]), float(value_range[1])
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"value_range must be two finite numbers, low < high, got {value_range}")
        return low, high
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN map is handled below
        low, high = float(np.nanmin(sim)), float(np.nanmax(sim))
    if not (math.isfinite(low) and math.isfinite(high)):
        finite = sim[np.isfinite(sim)]  # rare: only maps holding infinities pay for this copy
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return low, high


# --- the map and the segment ---------------------------------------------------------------------------------


def _map_image(sim: np.ndarray, geometry: PlotGeometry, low: float, high: float) -> Image.Image:
    """The plot area: each pixel shows the largest value among the frames it covers."""
    # Pixel i covers frames [floor(i * n / px), floor((i + 1) * n / px)). With more pixels than frames,
    # reduceat repeats a frame (nearest-neighbour upscaling, crisp blocks); with fewer it takes the block
    # maximum, so a thin bright diagonal survives downsampling. fmax ignores NaN unless a block is all NaN.
    row_starts = np.arange(geometry.height) * geometry.rows // geometry.height
    col_starts = np.arange(geometry.width) * geometry.cols // geometry.width
    grid = np.fmax.reduceat(sim, row_starts, axis=0)
    grid = np.fmax.reduceat(grid, col_starts, axis=1)
    if high > low:
        return Image.fromarray(colormap((grid - low) / (high - low)))
    # A constant map (e.g. one frame pair) has no scale: show it in the middle colour.
    return Image.fromarray(colormap(np.sign(grid - low) * 0.5 + 0.5))


def _outline(draw, geometry, segment: SegmentTimes, query_edges, target_edges, width: int) -> None:
    """A red rectangle with a white halo around a segment's time ranges (`width` 2: the best match)."""
    query_start, query_end = sorted((float(segment.query_start), float(segment.query_end)))
    target_start, target_end = sorted((float(segment.target_start), float(segment.target_end)))
    x0 = geometry.x_at(frame_position(target_start, target_edges))
    x1 = geometry.x_at(frame_position(target_end, target_edges))
    y0 = geometry.y_at(frame_position(query_start, query_edges))
    y1 = geometry.y_at(frame_position(query_end, query_edges))
    # Both outlines are centred on the boundary between pixel x - 1 and x: red on x - 1 and x, white around it.
    draw.rectangle([x0 - width, y0 - width, x1 + width - 1, y1 + width - 1], outline=SEGMENT_HALO, width=2 * width)
    draw.rectangle([x0 - 1, y0 - 1, x1, y1] if width == 2 else [x0, y0, x1, y1], outline=SEGMENT_COLOR, width=width)


def _draw_segment(draw, geometry, segment: SegmentTimes, query_edges, target_edges, query_label, target_label,
                  y, others: int = 0) -> None:
    _outline(draw, geometry, segment, query_edges, target_edges, width=2)
    query_start, query_end = sorted((float(segment.query_start), float(segment.query_end)))
    target_start, target_end = sorted((float(segment.target_start), float(segment.target_end)))
    font = default_font(LABEL_SIZE)
    caption = (
        f"segment  {query_label}: {_time_span(query_start, query_end)},  "
        f"{target_label}: {_time_span(target_start, target_end)}"
        + (f"  (+{others} more part{'s' if others > 1 else ''})" if others else "")
    )
    _heading(draw, geometry, y, caption, font, SEGMENT_COLOR)


def _heading(draw: ImageDraw.ImageDraw, geometry: PlotGeometry, y: int, text: str, font, fill) -> None:
    """One line of text above the plot, shortened to fit the image."""
    text = fit(draw, printable(text, font), font, geometry.image_width - 2 * PAD)
    half = text_width(draw, text, font) / 2
    # Centre over the plot, but slide toward the image centre when the line is wider than the plot.
    center = geometry.left + geometry.width / 2
    center = min(max(center, PAD + half), geometry.image_width - PAD - half)
    draw_text(draw, (center, y), text, font, fill, "mt")


def _time_span(start: float, end: float) -> str:
    unit = " s" if end < 60 else ""  # m:ss labels speak for themselves
    return f"{format_seconds(start, 1)} - {format_seconds(end, 1)}{unit}"
