"""Training input: which videos each step's batch holds, and the frames a video contributes (docs/METHOD.md §5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from s2vs_cli.training.clips import BatchPlan, ClipSource, item_generator
from s2vs_cli.errors import ConfigError
from s2vs_cli.media.inputs import VideoInput


def _frame_folder(root, name: str, count: int, size=(320, 256)):
    """Frames whose red channel holds their index (JPEG at quality 100 keeps it within a few levels)."""
    folder = root / name
    folder.mkdir()
    for k in range(count):
        Image.new("RGB", size, (k * 10, 0, 0)).save(folder / f"{k:05d}.jpg", quality=100)
    return VideoInput(name, folder)


def test_each_epoch_uses_every_video_once_in_whole_batches():
    plan = BatchPlan(videos=10, batch_size=3, seed=1)
    assert plan.steps_per_epoch == 3  # 9 of 10 videos: the last partial batch is left out
    epoch = [plan.video_indices(step) for step in range(3)]
    seen = [i for batch in epoch for i in batch]
    assert len(seen) == len(set(seen)) == 9
    assert plan.video_indices(3) != epoch[0] or plan.video_indices(4) != epoch[1]  # a new permutation
    assert plan.video_indices(2) == BatchPlan(videos=10, batch_size=3, seed=1).video_indices(2)  # a pure function


def test_ranks_get_disjoint_videos():
    plan = BatchPlan(videos=12, batch_size=3, world_size=2)
    for step in range(4):
        a, b = plan.video_indices(step, 0), plan.video_indices(step, 1)
        assert len(a) == len(b) == 3 and not set(a) & set(b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(videos=5, batch_size=6), "a batch of 6 videos needs at least that many videos; found 5"),
    (dict(videos=5, batch_size=3, world_size=2), "a batch of 3 videos x 2 processes needs"),
    (dict(videos=5, batch_size=1), "batch_size must be at least 2"),
])
def test_batch_plan_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BatchPlan(**kwargs)


def test_item_generators_are_independent_and_reproducible():
    draw = lambda *key: torch.rand(4, generator=item_generator(*key)).tolist()  # noqa: E731
    assert draw(0, 5, 0, 1) == draw(0, 5, 0, 1)
    others = [draw(1, 5, 0, 1), draw(0, 6, 0, 1), draw(0, 5, 1, 1), draw(0, 5, 0, 2)]
    assert all(other != draw(0, 5, 0, 1) for other in others)


def test_a_window_is_consecutive_frames_resized_to_short_side_256(tmp_path):
    source = ClipSource([_frame_folder(tmp_path, "v", 20, size=(400, 200))], "frames")
    starts = set()
    for seed in range(30):
        clip = source.window(0, 8, torch.Generator().manual_seed(seed))
        assert clip.shape == (8, 256, 512, 3) and clip.dtype == torch.uint8
        index = np.round(clip[:, 0, 0, 0].numpy() / 10).astype(int)
        assert (np.diff(index) == 1).all()
        starts.add(int(index[0]))
    assert starts <= set(range(12)) and len(starts) > 5  # start uniform in [0, max(20 - 8, 1) - 1]


def test_a_short_video_gives_all_its_frames(tmp_path):
    source = ClipSource([_frame_folder(tmp_path, "v", 5)], "frames")
    clip = source.window(0, 8, torch.Generator().manual_seed(0))
    assert np.round(clip[:, 0, 0, 0].numpy() / 10).astype(int).tolist() == [0, 1, 2, 3, 4]


def test_videos_are_decoded_at_fps_uncropped(tmp_path):
    from media import write_video

    frames = [np.full((120, 160, 3), 20 * k, dtype=np.uint8) for k in range(10)]
    path = write_video(tmp_path / "v.mp4", frames, rate=2)
    clip = ClipSource([VideoInput("v", path)], "video", fps=1.0).window(0, 64, torch.Generator().manual_seed(0))
    assert clip.shape == (5, 256, 342, 3)  # 5 s at 1 fps; 160x120 scaled to a short side of 256 (even width)
