"""The colours of the similarity heatmap: viridis for values, fixed colours for text, frame and segment."""
from __future__ import annotations

import functools

import numpy as np

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


def colormap(values: np.ndarray) -> np.ndarray:
    """RGB uint8 colours [..., 3] of values in [0, 1] (clipped); NaN is gray."""
    values = np.asarray(values, dtype=np.float64)
    index = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (_LUT_SIZE - 1)).astype(np.intp)
    index = np.where(np.isnan(values), _LUT_SIZE, index)  # the extra last entry of the table is the NaN colour
    return _lookup_table()[index]


@functools.cache
def _lookup_table() -> np.ndarray:
    """Colour table [_LUT_SIZE + 1, 3]: viridis interpolated from its anchors, then the NaN colour."""
    anchors_at = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
    at = np.linspace(0.0, 1.0, _LUT_SIZE)
    table = np.stack([np.interp(at, anchors_at, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=1)
    return np.vstack([np.rint(table), NAN_COLOR]).astype(np.uint8)


def palette_image(values: np.ndarray):
    """Values in [0, 1] (NaN: gray) as an 8-bit palette PIL image of the same colours (at most 3 levels off):
    a third of the RGB PNG's bytes and 5x faster to encode, for the report's many heatmaps."""
    from PIL import Image  # late: PIL, only once a heatmap is drawn (search and evaluate import report.document)

    values = np.asarray(values, dtype=np.float64)
    index = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * 254).astype(np.uint8)
    index[np.isnan(values)] = 255  # the palette's last entry is the NaN colour
    steps = np.rint(np.linspace(0, _LUT_SIZE - 1, 255)).astype(np.intp)
    image = Image.fromarray(index)  # "L"; putpalette makes it "P"
    image.putpalette(np.vstack([_lookup_table()[steps], np.array([NAN_COLOR], np.uint8)]).tobytes())
    return image
