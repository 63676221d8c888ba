"""When stored features can be trusted: checksums, content digests and the values themselves.

Three layers, so damage is found when data is read rather than trusted, whatever the file's format:
- HDF5's Fletcher-32 filter on every chunk of the features we write: the library checks it on each
  read at memory speed, so search's hot path pays next to nothing; a rotted chunk is a read error;
- the content digest recorded beside each video when it was written (`content_digest`): checked on
  every read of a dataset without chunk checksums (files from before them, or rewritten by a tool that
  drops filters), by `s2vs verify` for all, and by every merge, so a video whose write never finished (no
  digest) or whose bytes changed is never copied forward;
- the values, on every read (`value_damage`): stored region vectors are unit vectors (docs/METHOD.md §2:
  L2-normalised last, whitened or not, in every layout, the published files' too), so NaN, infinity or a
  vector whose norm is not 1 is damage, never a score. It is what a file with neither checksum nor digest
  (the published layout) is checked by, and it bounds every similarity to [-1, 1] up to rounding.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading

import numpy as np

# HDF5 puts the system's message after "error message = '" and a timestamp with newlines before it.
_SYSTEM_MESSAGE = re.compile(r"error message = '([^']+)'")
# How far a stored region vector's norm may be from 1: rounding moves it by less than 0.001 in float16 storage
# (2**-11 a value) and 0.004 from bf16 extraction; damage that stays within 1% cannot move a similarity by more.
NORM_TOLERANCE = 0.01
_SQUARED_NORMS = ((1 - NORM_TOLERANCE) ** 2, (1 + NORM_TOLERANCE) ** 2)
# float16 -> float32 by moving its bits: exponent rebiased from 15 to 127 (NumPy's own cast is 4x slower here).
# Not torch (2.8x faster still): its OpenMP threads hang a process forked after they ran, and reading a store
# in a forked worker must keep working.
_FLOAT16_REBIAS = np.uint32((127 - 15) << 23)
# Values widened at a time, into a buffer each thread reuses: a fresh 1.4 MB temporary a read cost more in page
# faults (1.1 ms a 75 x 9 x 512 video on this VM) than the arithmetic (0.2 ms).
_WIDEN_BLOCK = 1 << 20
_scratch = threading.local()


def content_digest(features: np.ndarray) -> str:
    """A short hash of a video's stored features (its bytes, dtype and shape)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{features.dtype.str}{features.shape}".encode())
    digest.update(np.ascontiguousarray(features).data)
    return digest.hexdigest()


def video_damage(features: np.ndarray, attrs, verify_digest: bool, requires_digest: bool) -> str | None:
    """Why a video's features, as read (in their stored shape and dtype), cannot be trusted; None when they can.

    `verify_digest`: recompute the digest (needless on a hot path when HDF5 verified each chunk's checksum).
    `requires_digest`: the file is one of ours, where a video without a digest was never finished.
    The values are checked in every case (`value_damage`).
    """
    digest = attrs.get("digest")
    if digest is None:
        if requires_digest:
            return "incomplete: its write never finished (no content digest)"
    elif verify_digest and content_digest(features) != attr_text(digest):
        return "damaged: its bytes differ from the digest recorded when it was written"
    return value_damage(features)


def value_damage(features: np.ndarray) -> str | None:
    """Why stored features cannot be what an extractor wrote (NaN or infinity, or a region vector, along the
    last axis, whose norm is not 1 within NORM_TOLERANCE); None when they can be. One pass over the values:
    about 0.25 µs a 512-d float16 vector, 165 µs a video of 75 frames of 9 regions."""
    if features.size == 0:
        return None
    squared = squared_norms(features)
    low, high = _SQUARED_NORMS
    if low <= squared.min() and squared.max() <= high:  # NaN fails both comparisons
        return None
    if not all_finite(features):
        return "damaged: its features hold NaN or infinite values"
    worst = features.reshape(-1, features.shape[-1])[int(np.argmax(np.abs(squared - 1)))]
    norm = math.sqrt(float(np.dot(worst.astype(np.float64), worst.astype(np.float64))))
    return f"damaged: a region vector has norm {norm:.3g} (stored features are unit vectors)"


def squared_norms(features: np.ndarray) -> np.ndarray:
    """Squared L2 norm of every vector along the last axis -> float32 (float64 for wider types) [N].

    float16 is widened exactly by moving its bits (NaN and infinity come out huge, never in range), but for
    zeros and subnormals (below 6.1e-5), which come out below 6.1e-5: less than 4e-9 on a square.
    """
    flat = features.reshape(-1, features.shape[-1])
    if flat.dtype != np.float16:
        flat = flat if flat.dtype in (np.float32, np.float64) else flat.astype(np.float64)
        return np.einsum("ij,ij->i", flat, flat)
    bits, squared = flat.view(np.uint16), np.empty(len(flat), np.float32)
    rows = min(len(bits), max(1, _WIDEN_BLOCK // bits.shape[1]))
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) < rows * bits.shape[1]:
        buffer = _scratch.buffer = np.empty(rows * bits.shape[1], np.uint32)
    for start in range(0, len(bits), rows):
        block = bits[start:start + rows]
        wide = buffer[:block.size].reshape(block.shape)
        wide[...] = block
        wide &= 0x7FFF  # the magnitude: squares need no sign
        wide <<= 13
        wide += _FLOAT16_REBIAS
        values = wide.view(np.float32)
        np.einsum("ij,ij->i", values, values, out=squared[start:start + len(block)])
    return squared


def all_finite(features: np.ndarray) -> bool:
    """No NaN or infinity; for float16 from the exponent bits (6x faster than np.isfinite, on search's hot path)."""
    if features.dtype == np.float16:
        return features.size == 0 or int((features.view(np.uint16) & 0x7FFF).max()) < 0x7C00
    return bool(np.isfinite(features).all())


def read_failure(error: BaseException, checksummed: bool) -> str:
    """Why reading a video's features failed, as "damaged (...)": HDF5 reports a checksum that does not
    hold as a filter failure, which says nothing to a user."""
    cause = "a chunk's checksum does not match its bytes" if checksummed else error_reason(error)
    return f"damaged ({cause})"


def error_reason(error: BaseException) -> str:
    """One line from an exception's text, keeping the operating system's cause (e.g. "No space left on
    device"), which HDF5 puts after a multi-line timestamp."""
    raw = error.args[0] if isinstance(error, KeyError) and error.args else error  # str(KeyError) adds quotes
    text = " ".join(str(getattr(error, "strerror", None) or raw).split())
    system = _SYSTEM_MESSAGE.search(text)
    if system:
        first = text.split(" (", 1)[0]
        return f"{first}: {system.group(1)}" if first != text else system.group(1)
    return text or type(error).__name__


def attr_text(value) -> str:
    """An HDF5 attribute as str (h5py gives bytes for some strings)."""
    return value.decode() if isinstance(value, bytes) else str(value)
