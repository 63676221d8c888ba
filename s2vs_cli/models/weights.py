"""Official S2VS artifacts: where they live, how they are cached, downloaded and loaded safely.

Library code: stdlib and torch only. Progress is reported through a plain callback so that the
CLI can draw a bar without this module knowing how.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, WeightsError

ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Artifact:
    """One downloadable file: its URL, cache file name and what is known of its checksum."""

    name: str
    url: str
    filename: str
    sha256: str | None
    sha256_prefix: str | None = None
    description: str = ""
    # Other names the same weights go by in torch hub's cache (torchvision renamed the file).
    hub_filenames: tuple[str, ...] = ()


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="resnet50_imagenet",
            url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
            filename="resnet50-0676ba61.pth",
            sha256=None,
            sha256_prefix="0676ba61",
            description="ResNet-50 backbone, torchvision IMAGENET1K_V1",
            hub_filenames=("resnet50-0676ba61.pth", "resnet50-19c8e357.pth"),
        ),
        Artifact(
            name="pca_vcdb",
            url="http://ndd.iti.gr/visil/pca_resnet50_vcdb_1M.pth",
            filename="pca_resnet50_vcdb_1M.pth",
            sha256=None,
            description="PCA whitening of ResNet-50 region features, learnt on 1M VCDB frames",
        ),
        Artifact(
            name="s2vs_dns",
            url="https://mever.iti.gr/s2vs/weights/s2vs_dns.pth",
            filename="s2vs_dns.pth",
            sha256=None,
            description="S2VS similarity network, trained with the DnS video set",
        ),
        Artifact(
            name="s2vs_vcdb",
            url="https://mever.iti.gr/s2vs/weights/s2vs_vcdb.pth",
            filename="s2vs_vcdb.pth",
            sha256=None,
            description="S2VS similarity network, trained with the VCDB video set",
        ),
    )
}

_SIMILARITY_NETWORKS = ("s2vs_dns", "s2vs_vcdb")
_CHUNK = 1 << 16
_OFFLINE_VALUES = {"1", "true", "yes", "on"}
# torchvision's convention: "<name>-<first hex digits of sha256>.<ext>".
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
# Published S2VS checkpoints keep their training arguments as an argparse.Namespace.
_SAFE_GLOBALS = [argparse.Namespace]
_ZIP_MAGIC = b"PK\x03\x04"


def available_models() -> list[str]:
    """Names of the published similarity networks."""
    return list(_SIMILARITY_NETWORKS)


def package_version() -> str:
    """Installed version of s2vs, or "dev" when running from a source tree."""
    try:
        return importlib.metadata.version("s2vs")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


# ---------------------------------------------------------------------------------------------
# Cache and verification


def cache_dir() -> Path:
    """Folder that holds downloaded artifacts: $S2VS_HOME, else ~/.cache/s2vs."""
    home = os.environ.get("S2VS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "s2vs"


def _offline_from_env() -> bool:
    return os.environ.get("S2VS_OFFLINE", "").strip().lower() in _OFFLINE_VALUES


# path -> (mtime_ns, size, sha256): hashing 100 MB costs ~0.3 s, so do it once per process.
_DIGESTS: dict[Path, tuple[int, int, str]] = {}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, remembered per process while its mtime and size stay the same."""
    path = Path(path).resolve()
    st = path.stat()
    known = _DIGESTS.get(path)
    if known and known[:2] == (st.st_mtime_ns, st.st_size):
        return known[2]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    _DIGESTS[path] = (st.st_mtime_ns, st.st_size, h.hexdigest())
    return h.hexdigest()


def _remember_digest(path: Path, digest: str) -> None:
    path = Path(path).resolve()
    st = path.stat()
    _DIGESTS[path] = (st.st_mtime_ns, st.st_size, digest)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    """Digest recorded at download time (trust on first use), or None if absent or unreadable."""
    try:
        token = _sidecar(path).read_text().split()[0].lower()
    except (OSError, IndexError):
        return None
    return token if re.fullmatch(r"[0-9a-f]{64}", token) else None


def _write_sidecar(path: Path, digest: str) -> None:
    # sha256sum's format, so `sha256sum -c` can check the cache by hand.
    try:
        _sidecar(path).write_text(f"{digest}  {path.name}\n")
    except OSError:
        pass  # The sidecar only adds a later check; the download itself succeeded.


def _checksum_problem(
    digest: str, sha256: str | None, sha256_prefix: str | None, recorded: str | None = None
) -> str | None:
    """Why a digest fails the known expectations, or None if it passes them all."""
    if sha256 and digest != sha256.lower():
        return f"sha256 {digest} does not match the published {sha256.lower()}"
    if sha256_prefix and not digest.startswith(sha256_prefix.lower()):
        return f"sha256 {digest} does not start with {sha256_prefix.lower()} as its name says"
    if recorded and digest != recorded:
        return f"sha256 {digest} differs from {recorded}, recorded when it was downloaded"
    return None


def _verify_cached(path: Path, sha256: str | None, sha256_prefix: str | None) -> None:
    """Raise WeightsError unless a cached file passes every check we can make."""
    again = "delete it to download it again, or pass a local file path"
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: cached file is empty; {again}")
    problem = _checksum_problem(sha256_of(path), sha256, sha256_prefix, _read_sidecar(path))
    if problem:
        raise WeightsError(f"{path}: cached file is corrupt or incomplete ({problem}); {again}")


def _hub_candidates(artifact: Artifact) -> list[Path]:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / name for name in artifact.hub_filenames]


def _prefix_from_name(filename: str) -> str | None:
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------
# Resolution


def _get_artifact(name: str) -> Artifact:
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise WeightsError(
            f"unknown artifact '{name}'; known ones are: {', '.join(ARTIFACTS)}"
        ) from None


def resolve_artifact(
    name: str, progress: ProgressFn | None = None, offline: bool | None = None
) -> Path:
    """Local path of a registry artifact: verified cache hit, torch hub cache, else download."""
    return fetch(_get_artifact(name), progress, offline)


def fetch(artifact: Artifact, progress: ProgressFn | None = None, offline: bool | None = None) -> Path:
    """Local path of any downloadable file (weights, annotations): verified cache hit, torch hub cache,
    else a verified download; WeightsError when offline and not cached."""
    dest = cache_dir() / artifact.filename

    if dest.is_file():
        _verify_cached(dest, artifact.sha256, artifact.sha256_prefix)
        return dest

    for candidate in _hub_candidates(artifact):
        if candidate.is_file():
            # Each hub file name carries its own prefix (the old and new names differ).
            _verify_cached(candidate, artifact.sha256, _prefix_from_name(candidate.name))
            return candidate

    from_env = offline is None
    if offline is None:
        offline = _offline_from_env()
    if offline:
        reason = "offline (S2VS_OFFLINE is set)" if from_env else "offline (downloads disabled)"
        raise WeightsError(_download_failure(artifact.url, dest, reason))

    download(artifact.url, dest, artifact.sha256, artifact.sha256_prefix, progress)
    if artifact.sha256 is None:
        # Trust on first use: lets later runs detect a cache file damaged after download.
        _write_sidecar(dest, sha256_of(dest))
    return dest


def _looks_like_path(spec: str) -> bool:
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(s in spec for s in separators) or Path(spec).suffix.lower() in {".pth", ".pt"}


def resolve_file_or_artifact(
    spec: str,
    aliases: dict[str, str],
    what: str = "weights",
    other_choices: tuple[str, ...] = (),
    progress: ProgressFn | None = None,
    offline: bool | None = None,
) -> Path:
    """An existing file path as given, or a user-facing alias (e.g. 'imagenet') resolved through the registry.

    `other_choices` are words the caller handles itself (e.g. 'random'); they only appear in the message.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError(f"{spec}: is a directory, expected a {what} file")
    if spec in aliases:
        return resolve_artifact(aliases[spec], progress=progress, offline=offline)
    if _looks_like_path(spec):
        raise WeightsError(f"{spec}: file not found")
    names = ", ".join([*sorted(aliases), *other_choices])
    raise WeightsError(f"unknown {what} '{spec}': use {names} or a file path")


# ---------------------------------------------------------------------------------------------
# Download


def _download_failure(url: str, dest: Path, reason: str) -> str:
    return (
        f"cannot download {dest.name} from {url} ({reason}); "
        f"download it by hand and save it as {dest}, or pass a local file path"
    )


def _reason(exc: BaseException, timeout: float) -> str:
    """A short, one-line account of why a download failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, TimeoutError):  # socket.timeout is an alias of TimeoutError
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 30,
) -> Path:
    """Fetch url into dest atomically, verifying the checksum; WeightsError on any failure."""
    dest = Path(dest)
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": f"s2vs/{package_version()}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            # A temporary file in the same folder, so os.replace is an atomic rename.
            with tempfile.NamedTemporaryFile(
                dir=dest.parent, prefix=f"{dest.name}.", suffix=".part", delete=False
            ) as out:
                tmp = Path(out.name)
                h = hashlib.sha256()
                done = 0
                if progress:
                    progress(0, total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        if total is not None and done != total:
            raise WeightsError(_download_failure(url, dest, f"got {done} of {total} bytes"))
        digest = h.hexdigest()
        problem = _checksum_problem(digest, sha256, sha256_prefix)
        if problem:
            raise WeightsError(_download_failure(url, dest, problem))
        os.replace(tmp, dest)
        tmp = None
        _remember_digest(dest, digest)
        return dest
    except WeightsError:
        raise
    except (OSError, HTTPException, ValueError) as e:
        # URLError, HTTPError and timeouts are OSErrors; ValueError covers a malformed URL.
        raise WeightsError(_download_failure(url, dest, _reason(e, timeout))) from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Safe loading and saving of checkpoints


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


# ---------------------------------------------------------------------------------------------
# Reproducible random weights


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block and restore the global RNG state after it."""
    with torch.random.fork_rng(devices=[]):
        # Only the CPU generator: torch.manual_seed would also (lazily) reseed CUDA, which
        # fork_rng(devices=[]) does not restore. Models are built on the CPU.
        torch.random.default_generator.manual_seed(seed)
        yield
