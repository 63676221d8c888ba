"""Annotation files: fetched from the artifacts table (verified), or read from a path the user gives.

Pickles are read with an unpickler that admits only built-in containers and scalars, so an annotation
file can never run code. Every problem is one AnnotationError line that names the file.
Library code: stdlib and the package's own modules only.
"""
from __future__ import annotations

import builtins
import io
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..artifacts import ANNOTATION, artifacts_of
from ..errors import S2VSError, WeightsError
from ..downloads import fetch
from ..progress import SILENT, Progress

# Sets and frozensets are pickled as calls to their type; everything else these files hold has its own opcode.
_PLAIN_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool"}
)


class AnnotationError(S2VSError):
    """An annotation file could not be found, downloaded, verified or read."""


def annotation_path(key: str, progress: Progress = SILENT, offline: bool | None = None) -> Path:
    """Local copy of an annotation file of the artifacts table: verified cache hit, else a download."""
    known = artifacts_of(ANNOTATION)
    try:
        artifact = known[key]
    except KeyError:
        raise AnnotationError(f"unknown annotation file '{key}'; known ones are: {', '.join(known)}") from None
    try:
        # The download's error names the option that takes a local copy (the artifact's `option`).
        return fetch(artifact, progress, offline)
    except WeightsError as e:
        # The shared download helpers speak of weights; these are annotations.
        raise AnnotationError(str(e)) from e


def user_file(path: str | Path) -> Path:
    """A path the user gave for an annotation file, checked to be a readable file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise AnnotationError(f"{path}: is a directory, expected an annotation file")
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    return path


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents; AnnotationError otherwise."""
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text file") from e


def read_pickle(path: str | Path) -> Any:
    """Unpickle a file that may hold only built-in containers and scalars; AnnotationError otherwise."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as e:
        raise AnnotationError(
            f"{path}: refused to unpickle {e.name}: "
            "annotation files may hold only built-in containers and scalars"
        ) from e
    except Exception as e:
        # Damaged pickles fail with many types (UnpicklingError, EOFError, ValueError, ...).
        raise AnnotationError(f"{path}: not a valid pickle file ({one_line(e)})") from e


# ---------------------------------------------------------------------------------------------
# Checks of a loaded file's layout


def require(data: Any, keys: tuple[str, ...], path: Path, what: str) -> Mapping:
    """`data` as a mapping holding every key of `keys`; AnnotationError naming the missing ones otherwise."""
    if not isinstance(data, Mapping):
        raise AnnotationError(f"{path}: not a {what} annotation file (expected a dict)")
    missing = [k for k in keys if k not in data]
    if missing:
        raise AnnotationError(
            f"{path}: not a {what} annotation file (missing {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(repr, list(data)[:8]))})"
        )
    return data


def expect(value: Any, kind: type, path: Path, what: str) -> Any:
    """`value` if it is a `kind`; AnnotationError otherwise."""
    if not isinstance(value, kind):
        raise AnnotationError(f"{path}: expected {what}, found {type(value).__name__}")
    return value


@contextmanager
def layout_errors(path: Path, name: str) -> Iterator[None]:
    """Report a file whose keys are right but whose contents are not as one line, not a traceback."""
    try:
        yield
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise AnnotationError(f"{path}: unexpected {name} annotation layout ({one_line(e)})") from e


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and message."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]


# ---------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read file ({e.strerror or e})") from e


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _PlainUnpickler(pickle.Unpickler):
    """Builds only built-in containers and scalars; any other global (a class, a function) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        # "__builtin__" is how pickles written by Python 2 name the builtins module.
        if module in ("builtins", "__builtin__") and name in _PLAIN_BUILTINS:
            return getattr(builtins, name)
        raise _RefusedGlobal(f"{module}.{name}")
