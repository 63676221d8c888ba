"""Where and how models run, decided once: device (one GPU per torchrun rank), precision, compilation,
and the extractor and network loaded for that place.

Every command builds one `Runtime` with `Runtime.start(...)` and hands it to its library entry point;
nothing else resolves a device or a precision. The decisions themselves are pure functions
(`device_for_rank`, `resolve_precision`) so they can be tested without a GPU.
"""
from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from .config_checks import PRECISIONS
from .distributed import ProcessGroup, join_process_group, place_from_env
from .errors import ConfigError
from .progress import SILENT, Progress

if TYPE_CHECKING:  # models import torchvision; the runtime loads them only when asked
    from .models.extractor import RegionExtractor
    from .models.visil import ViSiL

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

def device_for_rank(spec: str, local_rank: int = 0, world_size: int = 1, cuda_devices: int = 0) -> str:
    """The device one process runs on: `auto|cpu|cuda|cuda:N` for the process with `local_rank` of
    `world_size` on a machine with `cuda_devices` visible GPUs (0 without CUDA). Pure; raises ConfigError.

    Under torchrun (world_size > 1) each process takes `cuda:LOCAL_RANK`, so ranks never share GPU 0.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "cpu" or (spec == "auto" and cuda_devices == 0):
        return "cpu"
    if spec not in ("auto", "cuda") and not spec.startswith("cuda:"):
        raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    if cuda_devices == 0:
        raise ConfigError(f"device {spec!r} asked for, but CUDA is not available here (use --device cpu)")
    if spec.startswith("cuda:"):
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
        if world_size > 1:
            raise ConfigError(f"device {spec!r} under torchrun: each process takes the GPU of its LOCAL_RANK; "
                              "give --device cuda (or auto)")
    else:
        index = local_rank
    if index >= cuda_devices or index < 0:
        what = f"LOCAL_RANK {local_rank}" if not spec.startswith("cuda:") else f"device {spec!r}"
        raise ConfigError(f"{what} has no GPU: {cuda_devices} CUDA device(s) visible")
    return f"cuda:{index}"


def visible_cuda_devices() -> int:
    """How many CUDA devices this process sees (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto|cpu|cuda|cuda:N` for a single process, as a torch.device (ConfigError when unusable)."""
    return torch.device(device_for_rank(spec, cuda_devices=visible_cuda_devices()))


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16, AMX or Arm BF16)."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    except OSError:
        pass
    return False


def resolve_precision(spec: str, device: torch.device) -> str:
    """Turn `auto|fp32|bf16|fp16` into the precision actually used on `device`."""
    spec = (spec or "auto").strip().lower()
    if spec not in PRECISIONS:
        raise ConfigError(f"unknown precision {spec!r}: use one of {', '.join(PRECISIONS)}")
    if spec == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if spec == "fp16" and device.type == "cpu":
        # CPU fp16 kernels exist but are slow and lose range; say so rather than crawl.
        raise ConfigError("fp16 is for CUDA devices; on the CPU use bf16 or fp32")
    return spec


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for `precision` (a no-op in fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


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

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for this runtime's precision (a no-op in fp32)."""
        return autocast(self.device, self.precision)

    def load_extractor(self, backbone_weights: str = "imagenet", pca: str = "vcdb") -> RegionExtractor:
        """Load the region extractor onto this runtime's device and keep it."""
        from .models.loading import load_extractor

        self.extractor = load_extractor(backbone_weights, pca, self.device, self.seed, self.progress)
        return self.extractor

    def load_network(self, model: str = "s2vs_dns") -> ViSiL:
        """Load the similarity network onto this runtime's device and keep it."""
        from .models.loading import load_similarity_network

        self.network = load_similarity_network(model, self.device, self.seed, self.progress)
        return self.network

    def load_models(self, backbone_weights: str = "imagenet", pca: str = "vcdb", model: str = "s2vs_dns",
                    features_only: bool = False) -> Runtime:
        """Load the extractor and (unless features only) the network, and check that they fit each other."""
        from .models.loading import check_available

        check_available(backbone_weights, pca, model, features_only)  # every missing file named at once
        extractor = self.load_extractor(backbone_weights, pca)
        if features_only:
            self.network = None
            return self
        network = self.load_network(model)
        if network.dims != extractor.dims:
            raise ConfigError(f"the similarity network takes {network.dims}-d features but --pca {pca} gives "
                              f"{extractor.dims}-d ones; use --pca vcdb (or random), or --features-only")
        return self

    @property
    def random_weights(self) -> bool:
        """Whether any loaded model carries seeded random weights (its results mean nothing)."""
        return bool((self.extractor is not None and self.extractor.is_random)
                    or (self.network is not None and self.network.is_random))

    def close(self) -> None:
        """Leave the process group (when one was joined)."""
        self.group.close()
