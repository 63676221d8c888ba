"""Where tensors are computed and at what precision: the device, the precision, and the autocast context.

The bottom floor of everything that runs a model: `models`, `scoring` and `training` take a device and a
precision from here, and `runtime.py` decides them once per process with these pure functions
(`device_for_rank`, `resolve_precision`, testable without a GPU) and holds the result as a `Compute`.
Only torch and the configuration's list of precisions are imported.
"""
from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from functools import lru_cache

import torch

from .config_checks import PRECISIONS
from .errors import ConfigError

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


@dataclass(frozen=True)
class Compute:
    """A decided place to compute: the device and the resolved precision (fp32, bf16 or fp16) used there."""

    device: torch.device
    precision: str

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for this precision on this device (a no-op in fp32)."""
        return autocast(self.device, self.precision)
