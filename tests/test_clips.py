"""Training input: which videos each step's batch holds, and the frames a video contributes (docs/METHOD.md §5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from s2vs_cli.training import clips
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


def test_the_papers_run_in_whole_epochs_is_30770_steps():
    """DnS-100K, 2 processes of 64: ceil(115,792 / 128) = 905 steps an epoch, 30,000 // 905 + 1 = 34 epochs."""
    plan = BatchPlan(videos=115_792, batch_size=64, world_size=2, run_length="epochs")
    assert plan.steps_per_epoch == 905 and plan.run_steps(30_000) == 30_770
    assert [len(plan.video_indices(904, rank)) for rank in (0, 1)] == [40, 40]  # 57,896 a process: 904 x 64 + 40
    steps = BatchPlan(videos=115_792, batch_size=64, world_size=2, run_length="steps")
    assert steps.steps_per_epoch == 904 and steps.run_steps(30_000) == 30_000
    # One more epoch even when the epochs divide the iterations exactly, as the original's // + 1.
    assert BatchPlan(videos=10, batch_size=2, run_length="epochs").run_steps(10) == 15


@pytest.mark.parametrize("videos, world", [(10, 1), (11, 2), (13, 3)])
def test_an_epoch_gives_every_video_with_the_partial_batch_kept(videos, world):
    """As DistributedSampler(drop_last=False) + DataLoader: each process has ceil(videos / world) videos a pass,
    padded with the permutation's first ones; its last batch is smaller; all ranks take the same steps."""
    plan = BatchPlan(videos=videos, batch_size=3, world_size=world, seed=4, run_length="epochs")
    share = -(-videos // world)
    assert plan.steps_per_epoch == -(-share // 3)
    batches = [[plan.video_indices(step, rank) for rank in range(world)] for step in range(plan.steps_per_epoch)]
    sizes = [[len(b) for b in step] for step in batches]
    assert sizes[:-1] == [[3] * world] * (len(sizes) - 1) and sizes[-1] == [share - 3 * (len(sizes) - 1)] * world
    seen = [i for step in batches for b in step for i in b]
    assert len(seen) == share * world and set(seen) == set(range(videos))  # padded by share * world - videos
    order = np.random.default_rng([4, 0]).permutation(videos)
    assert batches[0][0] == order[0:3 * world:world].tolist()  # rank 0: places 0, world, 2·world of the permutation
    assert plan.video_indices(plan.steps_per_epoch) != batches[0][0]  # the next epoch, a new permutation


def test_ranks_get_disjoint_videos():
    plan = BatchPlan(videos=12, batch_size=3, world_size=2)
    for step in range(4):
        a, b = plan.video_indices(step, 0), plan.video_indices(step, 1)
        assert len(a) == len(b) == 3 and not set(a) & set(b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(videos=5, batch_size=6), "a batch of 6 videos needs at least that many videos; found 5"),
    (dict(videos=5, batch_size=3, world_size=2), "a batch of 3 videos x 2 processes needs"),
    (dict(videos=5, batch_size=1), "batch_size must be at least 2"),
    (dict(videos=5, batch_size=2, run_length="epoch"), "run_length must be epochs or steps, got 'epoch'"),
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


def test_a_short_video_is_looped_to_the_window_at_every_offset(tmp_path, monkeypatch):
    """20 frames -> 64: frame (offset + i) mod 20, the offset uniform over all 20 frames (the original loops a
    video shorter than the clip pair's 64 frames before the temporal transform and both crops)."""
    source = ClipSource([_frame_folder(tmp_path, "v", 20, size=(32, 32))], "frames")
    clip = source.window(0, 64, item_generator(0, 0, 0))
    assert clip.shape == (64, 256, 256, 3)  # the real frames, at training size
    first = np.round(clip[:, 0, 0, 0].numpy() / 10).astype(int)
    assert first.tolist() == [(first[0] + i) % 20 for i in range(64)]
    # 300 draws on 1-pixel frames holding their index (reading and resizing JPEGs 300 times takes seconds).
    monkeypatch.setattr(clips, "load_rgb", lambda path: np.full((1, 1, 3), int(path.stem), dtype=np.uint8))
    monkeypatch.setattr(clips, "shape_frame", lambda image, *args: image)
    offsets = []
    for seed in range(300):
        index = source.window(0, 64, item_generator(seed, 0, 0))[:, 0, 0, 0].numpy().astype(int)
        offsets.append(int(index[0]))
        assert index.tolist() == [(offsets[-1] + i) % 20 for i in range(64)]
    assert offsets[0] == first[0]  # the same draw as with the real frames
    counts = np.bincount(offsets, minlength=20)
    assert len(counts) == 20 and counts.min() >= 5  # every offset drawn (15 expected each of 300)


def test_a_video_of_exactly_the_window_is_taken_whole(tmp_path):
    source = ClipSource([_frame_folder(tmp_path, "v", 8, size=(32, 32))], "frames")
    clip = source.window(0, 8, torch.Generator().manual_seed(3))
    assert np.round(clip[:, 0, 0, 0].numpy() / 10).astype(int).tolist() == list(range(8))


def test_videos_are_decoded_at_fps_uncropped(tmp_path):
    from media import write_video

    frames = [np.full((120, 160, 3), 20 * k, dtype=np.uint8) for k in range(10)]
    path = write_video(tmp_path / "v.mp4", frames, rate=2)
    clip = ClipSource([VideoInput("v", path)], "video", fps=1.0).window(0, 64, torch.Generator().manual_seed(0))
    assert clip.shape == (64, 256, 342, 3)  # 160x120 scaled to a short side of 256 (even width)
    levels = np.round(clip[:, 0, 0, 0].numpy().astype(float) / 40).astype(int)
    assert sorted(set(levels.tolist())) == [0, 1, 2, 3, 4]  # 5 s at 1 fps (frames 0, 2, 4, 6, 8), looped to 64
    assert (np.diff(levels) % 5 == 1).all()
