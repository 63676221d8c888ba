"""Training input (docs/METHOD.md §5): which videos form each step's batch, and the frames each one contributes.

Every batch is a pure function of (seed, step, rank): the videos come from a per-epoch permutation
and each item's random draws from a generator seeded by its place in the run. A resumed run therefore
sees exactly the batches an uninterrupted one would, with no sampler or RNG state to restore, and
data-loading workers can build batches in any order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, VideoDecodeError
from ..media.frames import list_frame_files, load_rgb, shape_frame
from ..media.inputs import VideoInput

TRAINING_SHORT_SIDE = 256  # frames are resized to this shorter side, uncropped (the views crop to 224)


def item_generator(seed: int, step: int, rank: int, slot: int = 0) -> torch.Generator:
    """A generator for one item of one step, independent of every other (seed, step, rank, slot)."""
    state = np.random.SeedSequence([seed, step, rank, slot]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


@dataclass(frozen=True)
class BatchPlan:
    """Which videos each step's batch holds: epochs of a seeded permutation, cut into whole batches."""

    videos: int        # videos in the training set
    batch_size: int    # videos per process and step
    world_size: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.videos < self.batch_size * self.world_size:
            processes = f" x {self.world_size} processes" if self.world_size > 1 else ""
            raise ConfigError(f"a batch of {self.batch_size} videos{processes} needs at least that many videos; "
                              f"found {self.videos} (lower --batch-size)")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2: the other videos of a batch are the negatives")

    @property
    def steps_per_epoch(self) -> int:
        """Whole batches per pass over the videos (the remainder of a pass is left out, as drop_last does)."""
        return self.videos // (self.batch_size * self.world_size)

    def video_indices(self, step: int, rank: int = 0) -> list[int]:
        """Indices of the videos of process `rank`'s batch at `step`."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.videos)
        start = (within * self.world_size + rank) * self.batch_size
        return order[start:start + self.batch_size].tolist()


class ClipSource:
    """The training videos, as frame folders or video files, and their frames at training size."""

    def __init__(self, videos: list[VideoInput], loader: str, fps: float = 1.0):
        if loader not in ("frames", "video"):
            raise ValueError(f"loader must be frames or video, got {loader!r}")
        self.videos, self.loader, self.fps = videos, loader, fps
        self._frame_files: dict[int, list[Path]] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def window(self, index: int, frames: int, generator: torch.Generator) -> torch.Tensor:
        """`frames` consecutive frames of video `index` (all of a shorter one) -> uint8 [T, H, W, 3].

        The start is uniform in [0, max(L - frames, 1) - 1] for a video of L frames, as in the original.
        """
        if self.loader == "frames":  # frame files, read only for the window
            items, read = self._files(index), lambda path: shape_frame(load_rgb(path), TRAINING_SHORT_SIDE, 0, path)
        else:  # a video, decoded once per item
            items, read = self._decoded(index), lambda frame: frame
        start = int(torch.randint(max(len(items) - frames, 1), (1,), generator=generator))
        images = [read(item) for item in items[start:start + frames]]
        sizes = {image.shape for image in images}
        if len(sizes) > 1:
            raise VideoDecodeError(self.videos[index].path, f"frames of different sizes in one video: {sorted(sizes)}")
        return torch.from_numpy(np.stack(images))

    def _files(self, index: int) -> list[Path]:
        if index not in self._frame_files:
            self._frame_files[index] = list_frame_files(self.videos[index].path)
        return self._frame_files[index]

    def _decoded(self, index: int) -> np.ndarray:
        """A video's frames at `fps`, shorter side 256, uncropped (decoded again for each use: training
        on videos is for small collections; extract-frames once for large ones)."""
        from ..media.video import decode_video

        decoded = decode_video(self.videos[index].path, fps=self.fps, short_side=TRAINING_SHORT_SIDE, crop=0,
                               min_frames=1)
        if len(decoded.frames) == 0:
            raise VideoDecodeError(self.videos[index].path, "no frames decoded")
        return decoded.frames
