"""Draw a frame-to-frame similarity map as a PNG image, with time axes, a colour bar and the copied segment.

Rows of the map are query frames (time runs downward, like a matrix), columns are target frames.
Only numpy and Pillow are used, so the renderer works wherever the rest of the tool does.
"""

from __future__ import annotations

import functools
import math
import os
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Segment = tuple[float, float, float, float]

BACKGROUND = (255, 255, 255)
TEXT_COLOR = (30, 30, 30)
FRAME_COLOR = (60, 60, 60)
NAN_COLOR = (160, 160, 160)
SEGMENT_COLOR = (230, 25, 25)
# A white line on each side of the red outline keeps it visible on both the dark and the bright end of the map.
SEGMENT_HALO = (255, 255, 255)

# Anchors of matplotlib's perceptually uniform "viridis", sampled at 9 evenly spaced points; a linear
# interpolation between them is visually indistinguishable from the full table.
_VIRIDIS_ANCHORS = np.array(
    [
        (68, 1, 84),
        (72, 36, 117),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (39, 173, 129),
        (94, 201, 98),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
_LUT_SIZE = 256

# Layout, in pixels.
_PLOT_LONG_MAX = 900  # the plot's longer side lies between these two
_PLOT_LONG_MIN = 600
_PLOT_LONG_DEFAULT = 800  # used when no whole number of pixels per frame fits between them
_PLOT_SHORT_MIN = 240  # so that a 2 x 90 map still gets a readable strip
_PAD = 12
_LEFT = 96  # y tick labels up to "10:00:00" plus the rotated axis title
_RIGHT = 112  # colour bar and its labels
_BOTTOM = 62  # x tick labels and the axis title
_TITLE_LINE = 30
_SEGMENT_LINE = 22
_COLORBAR_GAP = 16
_COLORBAR_WIDTH = 18
_TICK_LENGTH = 5
_X_TICK_SPACING = 80  # minimum pixels between x tick labels ("1:00:00" is about 45 px wide)
_Y_TICK_SPACING = 40

_TITLE_SIZE = 18
_LABEL_SIZE = 14
_TICK_SIZE = 12

# Tick steps in seconds that read naturally on a clock.
_NICE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)

# The default font only covers Latin letters; typographic characters that commonly appear in titles get an
# ASCII stand-in instead of a missing-glyph box.
_ASCII_STANDINS = {
    "—": "-", "–": "-", "−": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "↔": "<->", "×": "x",
}


@dataclass(frozen=True)
class PlotGeometry:
    """Where the map lies in the rendered image: a box of width x height pixels at (left, top)."""

    left: int
    top: int
    width: int
    height: int
    rows: int  # query frames
    cols: int  # target frames
    image_width: int
    image_height: int

    @property
    def right(self) -> int:
        """First pixel column right of the plot."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """First pixel row below the plot."""
        return self.top + self.height

    def x_at(self, col: float) -> int:
        """Pixel column of a (fractional) target frame position; col = cols is the right edge."""
        return self.left + math.floor(col * self.width / self.cols + 0.5)

    def y_at(self, row: float) -> int:
        """Pixel row of a (fractional) query frame position; row = rows is the bottom edge."""
        return self.top + math.floor(row * self.height / self.rows + 0.5)

    def cell_center(self, row: int, col: int) -> tuple[int, int]:
        """(x, y) of a pixel inside the block that shows similarity[row, col]."""
        return self.x_at(col + 0.5), self.y_at(row + 0.5)


def plot_geometry(shape: tuple[int, int], title: str = "", segment: Segment | None = None) -> PlotGeometry:
    """Layout render_heatmap uses for a map of this shape with this title and segment."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"similarity map must be non-empty, got shape {tuple(shape)}")
    width, height = _plot_size(rows, cols)
    top = _PAD + (_TITLE_LINE if title else 0) + (_SEGMENT_LINE if segment is not None else 0) + 8
    return PlotGeometry(
        left=_LEFT,
        top=top,
        width=width,
        height=height,
        rows=rows,
        cols=cols,
        image_width=_LEFT + width + _RIGHT,
        image_height=top + height + _BOTTOM,
    )


def colormap(values: np.ndarray) -> np.ndarray:
    """RGB uint8 colours [..., 3] of values in [0, 1] (clipped); NaN is gray."""
    values = np.asarray(values, dtype=np.float64)
    index = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (_LUT_SIZE - 1)).astype(np.intp)
    index = np.where(np.isnan(values), _LUT_SIZE, index)  # the extra last entry of the table is the NaN colour
    return _lookup_table()[index]


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


def render_heatmap(
    similarity: np.ndarray,
    query_times: np.ndarray,
    target_times: np.ndarray,
    segment: Segment | None = None,
    title: str = "",
    query_label: str = "query",
    target_label: str = "target",
    value_range: tuple[float, float] | None = None,
) -> Image.Image:
    """Draw a similarity map (rows = query frames, columns = target frames) as an RGB image."""
    sim = _as_map(similarity)
    rows, cols = sim.shape
    query_edges = _time_edges(query_times, rows, "query_times")
    target_edges = _time_edges(target_times, cols, "target_times")
    segment = _as_segment(segment)
    low, high = _value_range(sim, value_range)
    geometry = plot_geometry(sim.shape, title=title, segment=segment)

    image = Image.new("RGB", (geometry.image_width, geometry.image_height), BACKGROUND)
    image.paste(_map_image(sim, geometry, low, high), (geometry.left, geometry.top))
    draw = ImageDraw.Draw(image)
    # The frame sits just outside the plot so it never hides a cell.
    draw.rectangle(
        [geometry.left - 1, geometry.top - 1, geometry.right, geometry.bottom], outline=FRAME_COLOR, width=1
    )

    _draw_x_axis(draw, geometry, target_times, target_edges, target_label)
    _draw_y_axis(image, draw, geometry, query_times, query_edges, query_label)
    _draw_colorbar(draw, geometry, low, high)

    y = _PAD
    if title:
        _heading(draw, geometry, y, title, _font(_TITLE_SIZE), TEXT_COLOR)
        y += _TITLE_LINE
    if segment is not None:
        _draw_segment(draw, geometry, segment, query_edges, target_edges, query_label, target_label, y)
    return image


def save_heatmap(
    path: str | os.PathLike[str],
    similarity: np.ndarray,
    query_times: np.ndarray,
    target_times: np.ndarray,
    segment: Segment | None = None,
    title: str = "",
    query_label: str = "query",
    target_label: str = "target",
    value_range: tuple[float, float] | None = None,
) -> None:
    """Render the similarity map and write it to `path` as a PNG, creating parent folders."""
    image = render_heatmap(
        similarity,
        query_times,
        target_times,
        segment=segment,
        title=title,
        query_label=query_label,
        target_label=target_label,
        value_range=value_range,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


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


def _as_segment(segment: Segment | None) -> Segment | None:
    if segment is None:
        return None
    values = tuple(float(t) for t in segment)
    if len(values) != 4 or not all(math.isfinite(t) for t in values):
        raise ValueError(
            f"segment must be 4 finite times (query_start, query_end, target_start, target_end), got {segment}"
        )
    return values


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


# --- the map ------------------------------------------------------------------------------------------------


def _plot_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of the plot: longer side 600-900 px, whole pixels per frame where possible."""
    long_frames, short_frames = max(rows, cols), min(rows, cols)
    per_frame = _PLOT_LONG_MAX // long_frames
    long_px = long_frames * per_frame if long_frames * per_frame >= _PLOT_LONG_MIN else _PLOT_LONG_DEFAULT
    short_px = round(short_frames * long_px / long_frames)
    if short_px < _PLOT_SHORT_MIN:
        # Stretch thin maps (cells are no longer square), still by a whole number of pixels per frame if cheap.
        snapped = short_frames * math.ceil(_PLOT_SHORT_MIN / short_frames)
        short_px = snapped if snapped <= 1.5 * _PLOT_SHORT_MIN else _PLOT_SHORT_MIN
    return (long_px, short_px) if cols >= rows else (short_px, long_px)


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


@functools.cache
def _lookup_table() -> np.ndarray:
    """Colour table [_LUT_SIZE + 1, 3]: viridis interpolated from its anchors, then the NaN colour."""
    anchors_at = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
    at = np.linspace(0.0, 1.0, _LUT_SIZE)
    table = np.stack([np.interp(at, anchors_at, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=1)
    return np.vstack([np.rint(table), NAN_COLOR]).astype(np.uint8)


# --- axes, colour bar, segment ------------------------------------------------------------------------------


def _frame_position(seconds: float, edges: np.ndarray) -> float:
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
        return [(_frame_position(v, edges), format_seconds(v)) for v in values]
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


def _draw_x_axis(draw, geometry, times, edges, label) -> None:
    font = _font(_TICK_SIZE)
    for position, text in _ticks(times, edges, geometry.width, _X_TICK_SPACING):
        x = min(geometry.x_at(position), geometry.right - 1)
        draw.line([(x, geometry.bottom + 1), (x, geometry.bottom + _TICK_LENGTH)], fill=FRAME_COLOR)
        _text(draw, (x, geometry.bottom + _TICK_LENGTH + 4), text, font, TEXT_COLOR, "mt")
    font = _font(_LABEL_SIZE)
    title = _fit(draw, _printable(f"{label} time (s)", font), font, geometry.width + _LEFT)
    _text(draw, (geometry.left + geometry.width / 2, geometry.bottom + 34), title, font, TEXT_COLOR, "mt")


def _draw_y_axis(image, draw, geometry, times, edges, label) -> None:
    font = _font(_TICK_SIZE)
    for position, text in _ticks(times, edges, geometry.height, _Y_TICK_SPACING):
        y = min(geometry.y_at(position), geometry.bottom - 1)
        draw.line([(geometry.left - _TICK_LENGTH - 1, y), (geometry.left - 2, y)], fill=FRAME_COLOR)
        _text(draw, (geometry.left - _TICK_LENGTH - 5, y), text, font, TEXT_COLOR, "rm")
    font = _font(_LABEL_SIZE)
    title = _fit(draw, _printable(f"{label} time (s)", font), font, geometry.height + geometry.top)
    _vertical_text(image, (_PAD, geometry.top + geometry.height / 2), title, font, TEXT_COLOR)


def _draw_colorbar(draw, geometry, low: float, high: float) -> None:
    x0 = geometry.right + _COLORBAR_GAP
    x1 = x0 + _COLORBAR_WIDTH
    colors = colormap(np.linspace(1.0, 0.0, geometry.height))  # top of the bar = highest value
    for offset, color in enumerate(colors):
        draw.line([(x0, geometry.top + offset), (x1 - 1, geometry.top + offset)], fill=tuple(int(c) for c in color))
    draw.rectangle([x0 - 1, geometry.top - 1, x1, geometry.bottom], outline=FRAME_COLOR, width=1)
    font = _font(_TICK_SIZE)
    _text(draw, (x1 + 6, geometry.top), f"{high:.3g}", font, TEXT_COLOR, "lt")
    _text(draw, (x1 + 6, geometry.bottom - 1), f"{low:.3g}", font, TEXT_COLOR, "lb")


def _draw_segment(draw, geometry, segment, query_edges, target_edges, query_label, target_label, y) -> None:
    query_start, query_end = sorted(segment[:2])
    target_start, target_end = sorted(segment[2:])
    x0 = geometry.x_at(_frame_position(target_start, target_edges))
    x1 = geometry.x_at(_frame_position(target_end, target_edges))
    y0 = geometry.y_at(_frame_position(query_start, query_edges))
    y1 = geometry.y_at(_frame_position(query_end, query_edges))
    # Both outlines are centred on the boundary between pixel x - 1 and x: red on x - 1 and x, white around it.
    draw.rectangle([x0 - 2, y0 - 2, x1 + 1, y1 + 1], outline=SEGMENT_HALO, width=4)
    draw.rectangle([x0 - 1, y0 - 1, x1, y1], outline=SEGMENT_COLOR, width=2)

    font = _font(_LABEL_SIZE)
    caption = (
        f"segment  {query_label}: {_time_span(query_start, query_end)},  "
        f"{target_label}: {_time_span(target_start, target_end)}"
    )
    _heading(draw, geometry, y, caption, font, SEGMENT_COLOR)


def _heading(draw: ImageDraw.ImageDraw, geometry: PlotGeometry, y: int, text: str, font, fill) -> None:
    """One line of text above the plot, shortened to fit the image."""
    text = _fit(draw, _printable(text, font), font, geometry.image_width - 2 * _PAD)
    half = _text_width(draw, text, font) / 2
    # Centre over the plot, but slide toward the image centre when the line is wider than the plot.
    center = geometry.left + geometry.width / 2
    center = min(max(center, _PAD + half), geometry.image_width - _PAD - half)
    _text(draw, (center, y), text, font, fill, "mt")


def _time_span(start: float, end: float) -> str:
    unit = " s" if end < 60 else ""  # m:ss labels speak for themselves
    return f"{format_seconds(start, 1)} - {format_seconds(end, 1)}{unit}"


# --- text ---------------------------------------------------------------------------------------------------


@functools.cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        # Pillow older than 10.1 or built without FreeType: the small fixed-size bitmap font.
        return ImageFont.load_default()


def _printable(text: str, font) -> str:
    """Text with characters the font cannot draw replaced by ASCII look-alikes, or '?' as a last resort."""
    missing = _glyph_signature(font, "\uffff")
    out = []
    for char in text:
        char = _ASCII_STANDINS.get(char, char)
        if len(char) == 1 and not char.isascii() and _glyph_signature(font, char) == missing:
            # "é" -> "e": drop accents the font lacks rather than print a box.
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            char = base if base and _glyph_signature(font, base) != missing else "?"
        out.append(char)
    return "".join(out)


@functools.cache
def _glyph_signature(font, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return right - left


def _fit(draw: ImageDraw.ImageDraw, text: str, font, max_width: float) -> str:
    """Text shortened with an ellipsis until it is at most max_width pixels wide."""
    if _text_width(draw, text, font) <= max_width:
        return text
    while len(text) > 1 and _text_width(draw, text + "...", font) > max_width:
        text = text[:-1]
    return text.rstrip() + "..."


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, fill, anchor: str) -> None:
    """Draw text with its ink box anchored at xy: anchor is horizontal (l, m, r) then vertical (t, m, b)."""
    # Anchors are computed here because Pillow only supports them natively for FreeType fonts.
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = {"l": xy[0] - left, "m": xy[0] - (left + right) / 2, "r": xy[0] - right}[anchor[0]]
    y = {"t": xy[1] - top, "m": xy[1] - (top + bottom) / 2, "b": xy[1] - bottom}[anchor[1]]
    draw.text((round(x), round(y)), text, font=font, fill=fill)


def _vertical_text(image: Image.Image, xy: tuple[float, float], text: str, font, fill) -> None:
    """Draw text reading bottom to top, its left edge at xy[0] and centred vertically on xy[1]."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    mask = mask.rotate(90, expand=True)
    image.paste(fill, (int(xy[0]), round(xy[1] - mask.height / 2)), mask)
