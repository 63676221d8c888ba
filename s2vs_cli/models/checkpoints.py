"""Checkpoint files: safe loading (weights_only), finding and checking state dicts, and atomic saving.

Loading never runs code from a file: torch.load with weights_only=True, which admits tensors, plain
containers and the argparse.Namespace that published checkpoints carry. Every problem is one
CheckpointError line naming the file.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

# Published S2VS checkpoints keep their training arguments as an argparse.Namespace.
_SAFE_GLOBALS = [argparse.Namespace]
_ZIP_MAGIC = b"PK\x03\x04"


def package_version() -> str:
    """Installed version of s2vs, or "dev" when running from a source tree."""
    try:
        return importlib.metadata.version("s2vs")
    except importlib.metadata.PackageNotFoundError:
        return "dev"




def _disallowed_global(exc: BaseException, path: Path) -> str | None:
    """Name of the global that weights_only refused, if that is why unpickling failed."""
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if m:
        return m.group(1)
    if "Unsupported global" in str(exc):
        with contextlib.suppress(Exception):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            return ", ".join(g for g in found if g not in {"argparse.Namespace"}) or None
    return None


def _invalid_file_reason(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    # Zip (torch >= 1.6) or a legacy pickle (protocol marker 0x80): a damaged PyTorch file.
    if head.startswith(_ZIP_MAGIC) or head[:1] == b"\x80":
        return "not a valid PyTorch file (truncated or corrupt)"
    return "not a valid PyTorch file (unrecognised format)"


def load_torch_file(path: Path, what: str) -> Any:
    """torch.load with weights_only=True onto the CPU; CheckpointError with one line on failure."""
    path = Path(path)

    def fail(problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: cannot load {what}: {problem}")

    if not path.exists():
        raise fail("file not found")
    if path.is_dir():
        raise fail("is a directory, expected a file")
    try:
        if path.stat().st_size == 0:
            raise fail("file is empty")
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        name = _disallowed_global(e, path)
        if name:
            raise fail(f"contains objects that cannot be loaded safely: {name}") from e
        raise fail(_invalid_file_reason(path)) from e
    except OSError as e:
        raise fail(f"cannot read file ({e.strerror or e})") from e
    except Exception as e:
        # torch reports damaged files through many types (RuntimeError, EOFError, KeyError, ...).
        raise fail(_invalid_file_reason(path)) from e


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint ({'model': ...} or bare), without 'module.'."""
    if isinstance(obj, Mapping) and _is_state_dict(obj.get("model")):
        state = obj["model"]
    elif _is_state_dict(obj):
        state = obj
    else:
        raise CheckpointError(f"{path}: no state dict found (expected a 'model' entry)")
    # Checkpoints saved from DistributedDataParallel prefix every key with "module.".
    if all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" … and {len(items) - limit} more" if len(items) > limit else "")


def check_state_dict(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], path: Path
) -> None:
    """CheckpointError naming missing and unexpected keys and wrong shapes, if there are any."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} has shape {tuple(state[k].shape)}, expected {tuple(shape)}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != tuple(shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches: {_listing(mismatched, limit=3)}")
    if parts:
        raise CheckpointError(f"{path}: weights do not fit the network; {'; '.join(parts)}")


def _check_plain(value: Any, where: str) -> None:
    """Reject values that torch.load(weights_only=True) would refuse to read back."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(value).__name__} cannot be saved; use plain types")


def save_checkpoint(
    path: Path, state_dict: Mapping[str, torch.Tensor], config: dict, **metadata: Any
) -> None:
    """Write model, config, s2vs_version and metadata atomically; loadable with weights_only."""
    path = Path(path)
    reserved = {"model", "config", "s2vs_version"} & metadata.keys()
    if reserved:
        raise TypeError(f"metadata may not override {', '.join(sorted(reserved))}")
    _check_plain(config, "config")
    for key, value in metadata.items():
        _check_plain(value, key)
    payload = {
        "model": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": config,
        "s2vs_version": package_version(),
        **metadata,
    }
    save_atomically(path, payload)


def save_atomically(path: str | Path, payload: Any) -> None:
    """torch.save to a temporary file beside `path`, synced, then renamed: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f"{path.name}.", suffix=".part", delete=False
        ) as out:
            tmp = Path(out.name)
            torch.save(payload, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
