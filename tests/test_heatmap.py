"""Tests of the similarity heatmap renderer."""

import numpy as np
import pytest
from PIL import Image

from s2vs_cli.report.axes import format_seconds
from s2vs_cli.report.colors import NAN_COLOR, SEGMENT_COLOR, colormap
from s2vs_cli.report.heatmap import render_heatmap, save_heatmap
from s2vs_cli.report.layout import plot_geometry
from s2vs_cli.scoring.localization import SegmentTimes

TOP_COLOR = tuple(int(c) for c in colormap(np.array(1.0)))
BOTTOM_COLOR = tuple(int(c) for c in colormap(np.array(0.0)))


def frame_times(n, fps=1.0):
    return np.arange(n) / fps


def block_map():
    """A 60 x 60 map of zeros with a bright block at query rows 10-20, target columns 30-40."""
    sim = np.zeros((60, 60), dtype=np.float32)
    sim[10:21, 30:41] = 1.0
    return sim


def assert_reasonable(image, geometry):
    assert image.mode == "RGB"
    assert image.size == (geometry.image_width, geometry.image_height)
    assert 200 <= geometry.width <= 900 and 200 <= geometry.height <= 900
    assert max(geometry.width, geometry.height) >= 600
    assert image.width <= 1200 and image.height <= 1200


@pytest.mark.parametrize("shape", [(1, 1), (2, 90), (90, 2), (60, 60), (60, 40), (1000, 30)])
def test_renders_rgb_image_of_reasonable_size(shape):
    sim = np.random.default_rng(0).random(shape)
    image = render_heatmap(sim, frame_times(shape[0]), frame_times(shape[1]), title="a.mp4 vs b.mp4")
    assert_reasonable(image, plot_geometry(shape, title="a.mp4 vs b.mp4"))


def test_small_map_cells_are_crisp_blocks():
    # 60 frames on a 900 px side: each frame is exactly 15 px, every pixel of a block has the same colour.
    sim = np.random.default_rng(1).random((60, 60))
    image = render_heatmap(sim, frame_times(60), frame_times(60))
    g = plot_geometry(sim.shape)
    assert g.width == g.height == 900
    plot = np.asarray(image)[g.top : g.bottom, g.left : g.right]
    blocks = plot.reshape(60, 15, 60, 15, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_large_map_is_downsampled_by_block_max():
    sim = np.random.default_rng(2).random((7200, 7200), dtype=np.float32) * 0.5
    sim[3600, 1234] = 1.0  # a single bright frame pair must survive the downsampling
    image = render_heatmap(sim, frame_times(7200, fps=2), frame_times(7200, fps=2))
    g = plot_geometry(sim.shape)
    assert_reasonable(image, g)
    plot = np.asarray(image)[g.top : g.bottom, g.left : g.right]
    assert (plot == TOP_COLOR).all(axis=-1).sum() == 1
    x, y = g.cell_center(3600, 1234)
    assert image.getpixel((x, y)) == TOP_COLOR


def test_known_block_has_top_colour_and_background_bottom_colour():
    sim = block_map()
    image = render_heatmap(sim, frame_times(60), frame_times(60))
    g = plot_geometry(sim.shape)
    assert image.getpixel(g.cell_center(15, 35)) == TOP_COLOR
    assert image.getpixel(g.cell_center(10, 30)) == TOP_COLOR
    assert image.getpixel(g.cell_center(20, 40)) == TOP_COLOR
    assert image.getpixel(g.cell_center(45, 10)) == BOTTOM_COLOR
    assert image.getpixel(g.cell_center(15, 41)) == BOTTOM_COLOR  # row 0 is at the top: no flip
    assert image.getpixel(g.cell_center(0, 0)) == BOTTOM_COLOR


def test_value_range_sets_colour_scale():
    sim = np.full((4, 4), 0.5)
    image = render_heatmap(sim, frame_times(4), frame_times(4), value_range=(0.0, 1.0))
    g = plot_geometry(sim.shape)
    assert image.getpixel(g.cell_center(1, 1)) == tuple(int(c) for c in colormap(np.array(0.5)))


def test_nan_is_gray_and_constant_map_renders():
    sim = np.ones((5, 5))
    sim[2, 3] = np.nan
    image = render_heatmap(sim, frame_times(5), frame_times(5))
    g = plot_geometry(sim.shape)
    assert image.getpixel(g.cell_center(2, 3)) == NAN_COLOR
    assert image.getpixel(g.cell_center(0, 0)) != NAN_COLOR
    render_heatmap(np.full((3, 3), np.nan), frame_times(3), frame_times(3))


def test_segment_rectangle_has_segment_colour():
    sim = block_map()
    segment = SegmentTimes(10.0, 21.0, 30.0, 41.0)  # seconds; at 1 frame/s these are frame positions
    image = render_heatmap(sim, frame_times(60), frame_times(60), segment=segment, title="x")
    g = plot_geometry(sim.shape, title="x", segment=segment)
    middle_y, middle_x = g.y_at(15.5), g.x_at(35.5)
    for x in (g.x_at(30), g.x_at(41)):  # left and right sides
        assert image.getpixel((x, middle_y)) == SEGMENT_COLOR
        assert image.getpixel((x - 1, middle_y)) == SEGMENT_COLOR
    for y in (g.y_at(10), g.y_at(21)):  # top and bottom sides
        assert image.getpixel((middle_x, y)) == SEGMENT_COLOR
    assert image.getpixel((middle_x, middle_y)) == TOP_COLOR  # the inside is not painted


def test_segment_follows_frame_times():
    # At 2 frames/s, second 5 is frame 10.
    sim = np.zeros((40, 40))
    segment = SegmentTimes(5.0, 10.0, 2.0, 8.0)
    image = render_heatmap(sim, frame_times(40, fps=2), frame_times(40, fps=2), segment=segment)
    g = plot_geometry(sim.shape, segment=segment)
    assert image.getpixel((g.x_at(4), g.y_at(15))) == SEGMENT_COLOR
    assert image.getpixel((g.x_at(10), g.y_at(10))) == SEGMENT_COLOR


def test_repeated_and_offset_times_render():
    sim = np.random.default_rng(3).random((6, 8))
    repeated = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])  # a short video played twice
    image = render_heatmap(sim, repeated, 100.0 + frame_times(8), segment=SegmentTimes(0.0, 2.0, 101.0, 105.0))
    assert image.mode == "RGB"


def test_unicode_title_renders():
    image = render_heatmap(np.eye(3), frame_times(3), frame_times(3), title="vidéo.mp4 — 中文 " * 20)
    assert image.mode == "RGB"


def test_save_heatmap_writes_png(tmp_path):
    path = tmp_path / "nested" / "dir" / "map.png"
    save_heatmap(path, block_map(), frame_times(60), frame_times(60), segment=SegmentTimes(10, 20, 30, 40), title="t")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        geometry = plot_geometry((60, 60), title="t", segment=SegmentTimes(10, 20, 30, 40))
        assert image.size == (geometry.image_width, geometry.image_height)


def test_save_heatmap_propagates_os_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        save_heatmap(blocker / "map.png", np.eye(2), frame_times(2), frame_times(2))


@pytest.mark.parametrize(
    "sim, query_times, target_times, message",
    [
        (np.zeros(5), frame_times(5), frame_times(5), "2-D"),
        (np.zeros((2, 2, 2)), frame_times(2), frame_times(2), "2-D"),
        (np.zeros((0, 5)), frame_times(0), frame_times(5), "non-empty"),
        (np.zeros((3, 4)), frame_times(4), frame_times(4), "query_times"),
        (np.zeros((3, 4)), frame_times(3), frame_times(5), "target_times"),
        (np.zeros((3, 4)), frame_times(3), np.zeros((4, 1)), "target_times"),
        (np.zeros((3, 4)), np.array([0.0, np.nan, 2.0]), frame_times(4), "finite"),
    ],
)
def test_invalid_input_raises_value_error(sim, query_times, target_times, message):
    with pytest.raises(ValueError, match=message):
        render_heatmap(sim, query_times, target_times)


def test_invalid_segment_raises_value_error():
    with pytest.raises(ValueError, match="segment"):
        render_heatmap(np.eye(4), frame_times(4), frame_times(4), segment=SegmentTimes(0.0, np.nan, 1.0, 2.0))


def test_invalid_value_range_raises_value_error():
    with pytest.raises(ValueError, match="value_range"):
        render_heatmap(np.eye(2), frame_times(2), frame_times(2), value_range=(1.0, 1.0))


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0"),
        (5, "5"),
        (30, "30"),
        (2.5, "2.5"),
        (0.1 + 0.2, "0.3"),
        (59, "59"),
        (60, "1:00"),
        (90, "1:30"),
        (605, "10:05"),
        (3600, "1:00:00"),
        (3725, "1:02:05"),
        (-90, "-1:30"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_colormap_is_uint8_rgb_and_increasing_in_brightness():
    colors = colormap(np.linspace(0, 1, 11))
    assert colors.dtype == np.uint8 and colors.shape == (11, 3)
    luminance = colors.astype(float) @ np.array([0.2126, 0.7152, 0.0722])
    assert (np.diff(luminance) > 0).all()
    assert tuple(colormap(np.array(np.nan))) == NAN_COLOR


def test_every_copied_part_is_outlined():
    from s2vs_cli.report.heatmap import render_heatmap
    from s2vs_cli.scoring.localization import SegmentTimes

    sim = np.zeros((40, 60), dtype=np.float32)
    times_q, times_t = np.arange(40, dtype=float), np.arange(60, dtype=float)
    best = SegmentTimes(2.0, 12.0, 5.0, 15.0)
    other = SegmentTimes(25.0, 35.0, 40.0, 50.0)
    alone = np.asarray(render_heatmap(sim, times_q, times_t, segment=best))
    both = np.asarray(render_heatmap(sim, times_q, times_t, segment=best, matches=[best, other]))
    red = lambda image: (image[..., 0] > 200) & (image[..., 1] < 80) & (image[..., 2] < 80)  # noqa: E731
    assert red(both).sum() > red(alone).sum()  # the second part has its own outline
    # The best part's outline is the same either way (the caption above the plot says how many more).
    assert np.array_equal(np.asarray(render_heatmap(sim, times_q, times_t, segment=best, matches=[best])), alone)
