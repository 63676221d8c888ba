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
from ..media.video import decode_video

TRAINING_SHORT_SIDE = 256  # frames are resized to this shorter side, uncropped (the views crop to 224)


def item_generator(seed: int, step: int, rank: int, slot: int = 0) -> torch.Generator:
    """A generator for one item of one step, independent of every other (seed, step, rank, slot)."""
    state = np.random.SeedSequence([seed, step, rank, slot]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


RUN_LENGTHS = ("epochs", "steps")


@dataclass(frozen=True)
class BatchPlan:
    """Which videos each step's batch holds: epochs of a seeded permutation, cut into batches.

    run_length "steps": whole batches only (the remainder of a pass is left out, as drop_last does), and a
    run of exactly the asked iterations. "epochs" (the original's DistributedSampler + DataLoader): each
    process takes every world_size-th video of the permutation, padded with its first videos to a multiple
    of world_size, so every process has ceil(videos / world_size) a pass; its last batch of a pass may be
    smaller; and a run is whole epochs, iterations // steps_per_epoch + 1 of them.
    """

    videos: int        # videos in the training set
    batch_size: int    # videos per process and step
    world_size: int = 1
    seed: int = 0
    run_length: str = "steps"

    def __post_init__(self):
        if self.run_length not in RUN_LENGTHS:
            raise ConfigError(f"run_length must be epochs or steps, got '{self.run_length}'")
        if self.videos < self.batch_size * self.world_size:
            processes = f" x {self.world_size} processes" if self.world_size > 1 else ""
            raise ConfigError(f"a batch of {self.batch_size} videos{processes} needs at least that many videos; "
                              f"found {self.videos} (lower --batch-size)")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2: the other videos of a batch are the negatives")

    @property
    def steps_per_epoch(self) -> int:
        """Batches per pass over the videos: whole ones ("steps"), or with the partial last one ("epochs")."""
        per_step = self.batch_size * self.world_size
        if self.run_length == "epochs":
            return -(-self.videos // per_step)  # = ceil(ceil(videos / world_size) / batch_size), the loader's len
        return self.videos // per_step

    def run_steps(self, iterations: int) -> int:
        """The steps of a run asked for `iterations`: exactly those, or the whole epochs that cover them.

        The original runs iterations // steps_per_epoch + 1 epochs, one more even when steps_per_epoch
        divides iterations: 115,792 videos, 2 processes of 64 -> 905 steps an epoch, 34 epochs, 30,770 steps.
        """
        if self.run_length == "epochs":
            return (iterations // self.steps_per_epoch + 1) * self.steps_per_epoch
        return iterations

    def video_indices(self, step: int, rank: int = 0) -> list[int]:
        """Indices of the videos of process `rank`'s batch at `step` (fewer at an epoch's end in "epochs")."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.videos)
        if self.run_length == "steps":
            start = (within * self.world_size + rank) * self.batch_size
            return order[start:start + self.batch_size].tolist()
        # As DistributedSampler(shuffle=True, drop_last=False): pad to a multiple of world_size with the
        # permutation's first videos, rank r takes places r, r + world_size, ...; then batches of that share.
        share = -(-self.videos // self.world_size)
        padded = np.concatenate([order, order[:share * self.world_size - self.videos]])
        mine = padded[rank::self.world_size]
        return mine[within * self.batch_size:(within + 1) * self.batch_size].tolist()


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
        """`frames` consecutive frames of video `index`, a shorter video looped -> uint8 [frames, H, W, 3].

        A video of L >= frames frames: the start is uniform in [0, max(L - frames, 1) - 1], as in the original.
        A shorter one is looped to exactly `frames` frames before any augmentation, as the original does:
        frame (offset + i) mod L for i < frames, the offset uniform over all L frames (one draw either way).
        """
        if self.loader == "frames":  # frame files, read only for the window
            items, read = self._files(index), lambda path: shape_frame(load_rgb(path), TRAINING_SHORT_SIDE, 0, path)
        else:  # a video, decoded once per item
            items, read = self._decoded(index), lambda frame: frame
        length = len(items)
        if length >= frames:
            start = int(torch.randint(max(length - frames, 1), (1,), generator=generator))
            order = None
            images = [read(item) for item in items[start:start + frames]]
        else:
            # The original doubles the video until it is long enough and starts uniformly in
            # [0, max(len - frames, 1) - 1]: offsets 0-15 of a 20-frame video, always 0 for 16 or 32 frames.
            # The offset here is uniform over all L frames (issue 17), the same loop at every phase.
            offset = int(torch.randint(length, (1,), generator=generator))
            order = torch.from_numpy((offset + np.arange(frames)) % length)
            images = [read(item) for item in items]  # each frame read once, then repeated
        sizes = {image.shape for image in images}
        if len(sizes) > 1:
            raise VideoDecodeError(self.videos[index].path, f"frames of different sizes in one video: {sorted(sizes)}")
        clip = torch.from_numpy(np.stack(images))
        return clip if order is None else clip[order]

    def _files(self, index: int) -> list[Path]:
        if index not in self._frame_files:
            self._frame_files[index] = list_frame_files(self.videos[index].path)
        return self._frame_files[index]

    def _decoded(self, index: int) -> np.ndarray:
        """A video's frames at `fps`, shorter side 256, uncropped (decoded again for each use: training
        on videos is for small collections; extract-frames once for large ones)."""
        decoded = decode_video(self.videos[index].path, fps=self.fps, short_side=TRAINING_SHORT_SIDE, crop=0,
                               min_frames=1)
        if len(decoded.frames) == 0:
            raise VideoDecodeError(self.videos[index].path, "no frames decoded")
        return decoded.frames
