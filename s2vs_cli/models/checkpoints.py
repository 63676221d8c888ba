"""Checkpoint files: safe loading (weights_only), finding and checking state dicts, and atomic saving.

Loading never runs code from a file: torch.load with weights_only=True, which admits tensors, plain
containers and the argparse.Namespace that published checkpoints carry. Every problem is one
CheckpointError line naming the file. When a load fails, the file's pickle is read as opcodes (never run,
pickletools) to tell a file holding other objects (a class, a function: a pickle payload) from a damaged one.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import pickletools
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch

from ..atomic import write_bytes_atomically
from ..downloads import package_version
from ..errors import CheckpointError

# Published S2VS checkpoints keep their training arguments as an argparse.Namespace.
_SAFE_GLOBALS = [argparse.Namespace]
_ZIP_MAGIC = b"PK\x03\x04"
# Globals a file of tensors and plain values names (besides torch's storages and dtypes, see _tensor_global).
_PLAIN_GLOBALS = frozenset({"collections.OrderedDict", "argparse.Namespace", "torch._utils._rebuild_tensor_v2",
                            "torch._utils._rebuild_parameter", "torch.device", "torch.Size"})
_PICKLES_READ = 6  # a legacy torch.save file is 5 pickles (magic, protocol, sys info, object, storage keys)




def _tensor_global(name: str) -> bool:
    """Whether a pickled global is one a file of tensors and plain values names (what weights_only admits)."""
    module, _, attribute = name.rpartition(".")
    if name in _PLAIN_GLOBALS or (module in ("torch._utils", "torch._tensor") and attribute.startswith("_rebuild")):
        return True  # "_rebuild…" cut short is a damaged file, not a foreign object
    is_dtype = isinstance(getattr(torch, attribute, None), torch.dtype)
    return module == "torch" and (attribute.endswith("Storage") or is_dtype)


def _pickle_stream(path: Path) -> IO[bytes]:
    """The pickle bytes of a checkpoint: data.pkl of a zip (torch >= 1.6), else the file itself (legacy)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            return io.BytesIO(archive.read(name))
    return open(path, "rb")


def _pickled_globals(stream: IO[bytes]) -> Iterator[str]:
    """Every global (module.name) the pickles in `stream` name, read as opcodes (nothing is run), up to the
    first byte that is not a pickle (a legacy file's raw storages, or damage)."""
    strings: list[str] = []  # STACK_GLOBAL takes its module and name from the last two strings pushed
    for _ in range(_PICKLES_READ):
        for opcode, argument, _ in pickletools.genops(stream):
            if opcode.name in ("GLOBAL", "INST"):
                yield argument.replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                yield f"{strings[-2]}.{strings[-1]}"
            elif isinstance(argument, str):
                strings.append(argument)


def _foreign_objects(path: Path, error: BaseException) -> list[str]:
    """The globals of `path` that are not tensors or plain values (a class, a function), in file order;
    torch's own message names one when the file cannot be read as opcodes."""
    found: list[str] = []
    with contextlib.suppress(Exception), _pickle_stream(path) as stream:  # damage ends the reading, not the check
        for name in _pickled_globals(stream):
            if not _tensor_global(name) and name not in found:
                found.append(name)
    named = re.search(r"unsupported global:? GLOBAL ([\w.]+)", str(error), re.IGNORECASE)
    if not found and named and not _tensor_global(named.group(1)):
        found.append(named.group(1))
    return found


def _invalid_file_reason(path: Path, error: BaseException) -> str:
    """Why torch could not load `path`: other objects than tensors, or a damaged or foreign file."""
    foreign = _foreign_objects(path, error)
    if foreign:
        return (f"it holds objects other than tensors ({_listing(foreign, limit=3)}) and was not loaded (loading "
                "them could run code); save the weights alone: torch.save(model.state_dict(), path)")
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
    except OSError as e:
        raise fail(f"cannot read file ({e.strerror or e})") from e
    except Exception as e:
        # torch reports refused objects (UnpicklingError) and damaged files through many types (RuntimeError,
        # EOFError, KeyError, ...).
        raise fail(_invalid_file_reason(path, e)) from e


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
    save_atomically(path, checkpoint_payload(state_dict, config, **metadata))


def checkpoint_payload(state_dict: Mapping[str, torch.Tensor], config: dict, **metadata: Any) -> dict[str, Any]:
    """What save_checkpoint writes: model (on the CPU), config, s2vs_version and metadata (plain values only)."""
    reserved = {"model", "config", "s2vs_version"} & metadata.keys()
    if reserved:
        raise TypeError(f"metadata may not override {', '.join(sorted(reserved))}")
    _check_plain(config, "config")
    for key, value in metadata.items():
        _check_plain(value, key)
    return {
        "model": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": config,
        "s2vs_version": package_version(),
        **metadata,
    }


def serialized(payload: Any) -> bytes:
    """The bytes torch.save writes for `payload`: made in memory, so a full disk is an OSError of the write that
    follows (naming the file), never torch's RuntimeError from inside its zip writer."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_atomically(path: str | Path, payload: Any) -> None:
    """torch.save `payload` to `path` whole or not at all (atomic.py); OutputWriteError naming it otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, serialized(payload))
