"""Where and how models run, decided once: device (one GPU per torchrun rank), precision, compilation,
and the extractor and network loaded for that place.

Every command builds one `Runtime` with `Runtime.start(...)` and hands it to its library entry point;
nothing else resolves a device or a precision. The decisions themselves are pure functions of `compute.py`
(`device_for_rank`, `resolve_precision`), the floor below models, scoring and training, so they can be
tested without a GPU; this module holds their result and the models loaded there.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .compute import Compute, device_for_rank, resolve_precision, visible_cuda_devices
from .compute import autocast, cpu_has_native_bf16, resolve_device  # noqa: F401 (still importable from here)
from .distributed import ProcessGroup, join_process_group, place_from_env
from .progress import SILENT, Progress

if TYPE_CHECKING:  # models import torchvision; the runtime loads them only when asked
    from .config import ModelOptions
    from .models.extractor import RegionExtractor
    from .models.visil import ViSiL


@dataclass
class Runtime:
    """One process's decision of where and how models run, and the models loaded there."""

    device: torch.device
    precision: str                      # resolved: fp32, bf16 or fp16
    compile: bool = False               # torch.compile the backbone
    seed: int = 0                       # for `random` weights
    group: ProcessGroup = field(default_factory=ProcessGroup)
    progress: Progress = SILENT         # where downloads and notes of model loading are reported
    extractor: RegionExtractor | None = None
    network: ViSiL | None = None        # None: features only

    @classmethod
    def start(cls, device: str = "auto", precision: str = "auto", compile: bool = False, seed: int = 0, *,
              distributed: bool = False, backend: str = "gloo",
              progress: Progress = SILENT) -> Runtime:
        """Decide device and precision for this process; with `distributed`, join torchrun's process group.

        The GPU is chosen (and made current with `torch.cuda.set_device`) before the process group
        starts, so collectives and every allocation of rank r land on cuda:LOCAL_RANK. `backend`: gloo (bulk
        jobs exchange small objects only) or `auto` (nccl on CUDA, for training's gradient averaging).
        """
        place = place_from_env() if distributed else ProcessGroup()
        run_device = torch.device(device_for_rank(device, place.local_rank, place.world_size,
                                                  visible_cuda_devices()))
        if run_device.type == "cuda":
            torch.cuda.set_device(run_device)
        run_precision = resolve_precision(precision, run_device)
        if backend == "auto":
            backend = "nccl" if run_device.type == "cuda" else "gloo"
        group = join_process_group(backend) if distributed else place
        return cls(run_device, run_precision, compile, seed, group, progress)

    @classmethod
    def cpu(cls, precision: str = "fp32", seed: int = 0) -> Runtime:
        """A single-process CPU runtime (tests, examples)."""
        return cls.start("cpu", precision, seed=seed)

    @property
    def compute(self) -> Compute:
        """The device and precision decided for this process, as the lower floors take them."""
        return Compute(self.device, self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for this runtime's precision (a no-op in fp32)."""
        return self.compute.autocast()

    def load_extractor(self, backbone_weights: str = "imagenet", pca: str = "vcdb", backbone: str | None = None
                       ) -> RegionExtractor:
        """Load the region extractor (`backbone`: a registered name; None: the default) here and keep it."""
        from .models.loading import load_extractor  # late: the model modules (~40 ms), for commands that load models only

        self.extractor = load_extractor(backbone_weights, pca, self.device, self.seed, self.progress,
                                        _backbone_name(backbone))
        return self.extractor

    def load_network(self, model: str = "s2vs_dns") -> ViSiL:
        """Load the similarity network onto this runtime's device and keep it."""
        from .models.loading import load_similarity_network  # late: as above

        self.network = load_similarity_network(model, self.device, self.seed, self.progress)
        return self.network

    def load_models(self, backbone_weights: str = "imagenet", pca: str = "vcdb", model: str = "s2vs_dns",
                    features_only: bool = False, backbone: str | None = None) -> Runtime:
        """Load the extractor and (unless features only) the network, and check that they fit each other."""
        from .models.loading import load_models  # late: as above

        self.extractor, self.network = load_models(backbone_weights, pca, model, features_only, self.device,
                                                   self.seed, self.progress, _backbone_name(backbone))
        return self

    def prepare(self, cfg: ModelOptions, videos: bool = True) -> Runtime:
        """Load what a job on `cfg` (a config with features_only) needs, the one way every job does: the extractor
        when it reads videos, the network unless features only."""
        if videos:
            return self.load_models(cfg.backbone_weights, cfg.pca, cfg.model, cfg.features_only, cfg.backbone)
        self.network = None if cfg.features_only else self.load_network(cfg.model)
        return self

    @property
    def random_weights(self) -> bool:
        """Whether any loaded model carries seeded random weights (its results mean nothing)."""
        return bool((self.extractor is not None and self.extractor.is_random)
                    or (self.network is not None and self.network.is_random))

    def close(self) -> None:
        """Leave the process group (when one was joined)."""
        self.group.close()


def _backbone_name(name: str | None) -> str:
    """A registered backbone's name, None being the default one (models/backbone_registry.py)."""
    from .models.backbone_registry import DEFAULT_BACKBONE  # late: the model modules, as above

    return DEFAULT_BACKBONE if name is None else name
