"""Where things lie on the heatmap image: margins, and the plot's size and position for a map's shape."""
from __future__ import annotations

import math
from dataclasses import dataclass

# Layout, in pixels.
_PLOT_LONG_MAX = 900  # the plot's longer side lies between these two
_PLOT_LONG_MIN = 600
_PLOT_LONG_DEFAULT = 800  # used when no whole number of pixels per frame fits between them
_PLOT_SHORT_MIN = 240  # so that a 2 x 90 map still gets a readable strip
PAD = 12
LEFT = 96  # y tick labels up to "10:00:00" plus the rotated axis title
RIGHT = 112  # colour bar and its labels
BOTTOM = 62  # x tick labels and the axis title
TITLE_LINE = 30
SEGMENT_LINE = 22
COLORBAR_GAP = 16
COLORBAR_WIDTH = 18
TICK_LENGTH = 5
X_TICK_SPACING = 80  # minimum pixels between x tick labels ("1:00:00" is about 45 px wide)
Y_TICK_SPACING = 40


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


def plot_geometry(shape: tuple[int, int], title: str = "", segment: object | None = None) -> PlotGeometry:
    """Layout render_heatmap uses for a map of this shape, with this title and (when not None) a segment line."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"similarity map must be non-empty, got shape {tuple(shape)}")
    width, height = _plot_size(rows, cols)
    top = PAD + (TITLE_LINE if title else 0) + (SEGMENT_LINE if segment is not None else 0) + 8
    return PlotGeometry(
        left=LEFT,
        top=top,
        width=width,
        height=height,
        rows=rows,
        cols=cols,
        image_width=LEFT + width + RIGHT,
        image_height=top + height + BOTTOM,
    )


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
