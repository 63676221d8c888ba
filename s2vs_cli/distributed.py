"""Running under torchrun: which process this is, and the few collective steps bulk jobs need.

torchrun (single or multi-node) sets RANK, WORLD_SIZE and LOCAL_RANK; we join its process group
over gloo, which works on every machine and is all we need (barriers and small object exchanges;
no tensors cross processes). Launched without torchrun, everything here is a no-op for one process
and torch is not even imported (extract-frames does not need it).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

# Ranks wait for the slowest one at the end of a run, which may take hours on uneven shards.
BARRIER_TIMEOUT = datetime.timedelta(days=7)


@dataclass
class ProcessGroup:
    """This process's place among the workers of one job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            import torch.distributed as dist  # late: torch, only under torchrun

            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order (picklable objects)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist  # late: torch, only under torchrun

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        """Leave the process group."""
        if self.distributed:
            import torch.distributed as dist  # late: torch, only under torchrun

            if dist.is_initialized():
                dist.destroy_process_group()


def place_from_env(environ: Mapping[str, str] | None = None) -> ProcessGroup:
    """This process's rank, world size and local rank as torchrun set them (a group of one without torchrun)."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ or "RANK" not in environ:
        return ProcessGroup()
    try:
        rank, world_size = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local_rank = int(environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    return ProcessGroup(rank, world_size, local_rank)


def join_process_group(backend: str = "gloo") -> ProcessGroup:
    """The torchrun process group this process belongs to, or a group of one.

    Bulk jobs exchange only small objects, for which gloo works everywhere; training on CUDA joins over
    nccl, which DistributedDataParallel's gradient averaging wants.
    """
    group = place_from_env()
    if not group.distributed:
        return group
    import torch.distributed as dist  # late: torch, only under torchrun (a single process never imports it)

    if group.distributed and not dist.is_initialized():
        dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    return group
