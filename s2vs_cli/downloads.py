"""Downloadable files on disk: the cache folder, verified cache hits, downloads, checksums and offline mode.

What to download comes from the one table, `s2vs_cli.artifacts`. A file is looked for in the cache
(`$S2VS_HOME`, else ~/.cache/s2vs), then in torch hub's cache, and downloaded only when neither has it
(never when offline). Every file is checked against what is known of its checksum: the published
sha256, the prefix in its name, or the digest recorded when it was first downloaded (trust on first use).
Library code: stdlib only (torch only to find its hub cache, for the weights that may be there, so fetching an
annotation file never loads it); progress goes through the `Progress` protocol.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from .artifacts import ARTIFACTS, BACKBONE, NETWORK, WHITENING, Artifact, looks_like_path
from .atomic import OutputWriteError, atomic_write, write_text_atomically
from .errors import UnknownWeightsError, WeightsError
from .progress import SILENT, Progress

_CHUNK = 1 << 16
_OFFLINE_VALUES = {"1", "true", "yes", "on"}
# torchvision's convention: "<name>-<first hex digits of sha256>.<ext>".
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
# Said when no option takes a local copy of the file.
LOCAL_FILE_HINT = "or pass a local file path"
# Said when published weights cannot be had: the route that needs no download, and what it is worth.
RANDOM_WEIGHTS_ROUTE = ("to run without downloads, seeded random weights take their place: --backbone-weights random "
                        "--pca random, and --model random for the similarity network (make demo OFFLINE=1 runs the "
                        "demo so), but the results then mean nothing")
WEIGHT_KINDS = (BACKBONE, WHITENING, NETWORK)


def package_version() -> str:
    """Installed version of s2vs, or "dev" when running from a source tree."""
    try:
        return importlib.metadata.version("s2vs")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def cache_dir() -> Path:
    """Folder that holds downloaded artifacts: $S2VS_HOME, else ~/.cache/s2vs."""
    home = os.environ.get("S2VS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "s2vs"


def offline_from_env() -> bool:
    """Whether S2VS_OFFLINE forbids downloads."""
    return os.environ.get("S2VS_OFFLINE", "").strip().lower() in _OFFLINE_VALUES


def offline_cause(offline: bool | None) -> str | None:
    """Why downloads are off ('S2VS_OFFLINE is set', 'downloads disabled'), or None when they are allowed.

    `offline`: True or False decides; None follows the S2VS_OFFLINE environment variable.
    """
    if offline is None:
        return "S2VS_OFFLINE is set" if offline_from_env() else None
    return "downloads disabled" if offline else None


def local_file_hint(artifact: Artifact) -> str:
    """How to use a local copy instead: 'or pass --pca FILE' (the artifact's option), else a generic hint."""
    return f"or pass {artifact.option} FILE" if artifact.option else LOCAL_FILE_HINT


def download_hint(artifact: Artifact) -> str:
    """What a failed download of `artifact` says to do: use a local copy, or (weights) run on random weights."""
    offline = f"; {RANDOM_WEIGHTS_ROUTE}" if artifact.kind in WEIGHT_KINDS else ""
    return local_file_hint(artifact) + offline


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
        write_text_atomically(_sidecar(path), f"{digest}  {path.name}\n")
    except OutputWriteError:
        pass  # The sidecar only adds a later check; the download itself succeeded.


def _checksum_problem(digest: str, sha256: str | None, sha256_prefix: str | None,
                      recorded: str | None = None) -> str | None:
    """Why a digest fails the known expectations, or None if it passes them all."""
    if sha256 and digest != sha256.lower():
        return f"sha256 {digest} does not match the published {sha256.lower()}"
    if sha256_prefix and not digest.startswith(sha256_prefix.lower()):
        return f"sha256 {digest} does not start with {sha256_prefix.lower()} as its name says"
    if recorded and digest != recorded:
        return f"sha256 {digest} differs from {recorded}, recorded when it was downloaded"
    return None


def _verify_cached(path: Path, sha256: str | None, sha256_prefix: str | None, hint: str = LOCAL_FILE_HINT) -> None:
    """Raise WeightsError unless a cached file passes every check we can make."""
    again = f"delete it to download it again, {hint}"
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: cached file is empty; {again}")
    problem = _checksum_problem(sha256_of(path), sha256, sha256_prefix, _read_sidecar(path))
    if problem:
        raise WeightsError(f"{path}: cached file is corrupt or incomplete ({problem}); {again}")


def _hub_candidates(artifact: Artifact) -> list[Path]:
    if not artifact.hub_filenames:
        return []
    import torch  # late: torch (its hub folder), needed only for weights torch hub may already hold

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / name for name in artifact.hub_filenames]


def _prefix_from_name(filename: str) -> str | None:
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def cached_copy(artifact: Artifact) -> Path | None:
    """The file already on disk (s2vs cache, else torch hub's), unverified; None when it must be downloaded."""
    for candidate in (cache_dir() / artifact.filename, *_hub_candidates(artifact)):
        if candidate.is_file():
            return candidate
    return None


def get_artifact(name: str) -> Artifact:
    """The artifact of the table with this name; WeightsError naming the known ones otherwise."""
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise WeightsError(f"unknown artifact '{name}'; known ones are: {', '.join(ARTIFACTS)}") from None


def resolve_artifact(name: str, progress: Progress = SILENT, offline: bool | None = None) -> Path:
    """Local path of a table artifact: verified cache hit, torch hub cache, else download."""
    return fetch(get_artifact(name), progress, offline)


def fetch(artifact: Artifact, progress: Progress = SILENT, offline: bool | None = None) -> Path:
    """Local path of any downloadable file (weights, annotations): verified cache hit, torch hub cache,
    else a verified download; WeightsError when offline and not cached."""
    dest = cache_dir() / artifact.filename
    found = cached_copy(artifact)
    if found is not None:
        # Each hub file name carries its own prefix (the old and new names differ).
        prefix = artifact.sha256_prefix if found == dest else _prefix_from_name(found.name)
        _verify_cached(found, artifact.sha256, prefix, local_file_hint(artifact))
        return found
    cause = offline_cause(offline)
    if cause:
        raise WeightsError(_download_failure(artifact.url, dest, f"offline ({cause})", download_hint(artifact)))
    download(artifact.url, dest, artifact.sha256, artifact.sha256_prefix, progress, hint=download_hint(artifact))
    if artifact.sha256 is None:
        # Trust on first use: lets later runs detect a cache file damaged after download.
        _write_sidecar(dest, sha256_of(dest))
    return dest


def resolve_file_or_artifact(spec: str, aliases: dict[str, str], what: str = "weights",
                             other_choices: tuple[str, ...] = (), progress: Progress = SILENT,
                             offline: bool | None = None) -> Path:
    """An existing file path as given, or a user-facing alias (e.g. 'imagenet') resolved through the table.

    `other_choices` are words the caller handles itself (e.g. 'random'); they only appear in the message.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError(f"{spec}: is a directory, expected a {what} file")
    if spec in aliases:
        return resolve_artifact(aliases[spec], progress=progress, offline=offline)
    if looks_like_path(spec):
        raise WeightsError(f"{spec}: file not found")
    names = ", ".join([*sorted(aliases), *other_choices])
    raise UnknownWeightsError(f"unknown {what} '{spec}': use {names} or a file path")


def _download_failure(url: str, dest: Path, reason: str, hint: str = LOCAL_FILE_HINT) -> str:
    return f"cannot download {dest.name} from {url} ({reason}); download it by hand and save it as {dest}, {hint}"


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


def download(url: str, dest: Path, sha256: str | None = None, sha256_prefix: str | None = None,
             progress: Progress = SILENT, timeout: float = 30, hint: str = LOCAL_FILE_HINT) -> Path:
    """Fetch url into dest atomically, verifying the checksum; WeightsError (ending with `hint`) on any failure."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": f"s2vs/{package_version()}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            # Renamed to dest only when whole and checked (atomic.py); any error takes the temporary file away.
            with atomic_write(dest, "wb") as out:
                h = hashlib.sha256()
                done = 0
                progress.download(0, total)
                while chunk := _read_chunk(response, url, dest, timeout, hint):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    progress.download(done, total)
                if total is not None and done != total:
                    raise WeightsError(_download_failure(url, dest, f"got {done} of {total} bytes", hint))
                digest = h.hexdigest()
                problem = _checksum_problem(digest, sha256, sha256_prefix)
                if problem:
                    raise WeightsError(_download_failure(url, dest, problem, hint))
        _remember_digest(dest, digest)
        return dest
    except WeightsError:
        raise
    except OutputWriteError as e:  # the disk refused the file (full, read-only)
        raise WeightsError(_download_failure(url, dest, e.reason, hint)) from None
    except (OSError, HTTPException, ValueError) as e:
        # URLError, HTTPError and timeouts are OSErrors; ValueError covers a malformed URL.
        raise WeightsError(_download_failure(url, dest, _reason(e, timeout), hint)) from e


def _read_chunk(response, url: str, dest: Path, timeout: float, hint: str) -> bytes:
    """The next chunk of a download; a network failure is a WeightsError, so it is not taken for a failed write."""
    try:
        return response.read(_CHUNK)
    except (OSError, HTTPException) as e:
        raise WeightsError(_download_failure(url, dest, _reason(e, timeout), hint)) from e
