"""When stored features can be trusted: checksums, content digests and finite values.

Three layers, cheapest first, so damage is found when data is read rather than trusted:
- HDF5's Fletcher-32 filter on every chunk of the features we write: the library checks it on each
  read at memory speed, so search's hot path pays next to nothing; a rotted chunk is a read error;
- the content digest recorded beside each video when it was written (`content_digest`): checked on
  read for files written before the checksums existed, by `s2vs verify` for all, and by every merge, so
  a video whose write never finished (no digest) or whose bytes changed is never copied forward;
- finite values: NaN or infinity in features (a published file has neither checksum nor digest) is
  damage, never a score.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np

# HDF5 puts the system's message after "error message = '" and a timestamp with newlines before it.
_SYSTEM_MESSAGE = re.compile(r"error message = '([^']+)'")


def content_digest(features: np.ndarray) -> str:
    """A short hash of a video's stored features (its bytes, dtype and shape)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{features.dtype.str}{features.shape}".encode())
    digest.update(np.ascontiguousarray(features).data)
    return digest.hexdigest()


def video_damage(features: np.ndarray, attrs, verify_digest: bool, requires_digest: bool,
                 check_finite: bool = True) -> str | None:
    """Why a video's features, as read (in their stored shape and dtype), cannot be trusted; None when they can.

    `verify_digest`: recompute the digest (needless on a hot path when HDF5 verified each chunk's checksum).
    `requires_digest`: the file is one of ours, where a video without a digest was never finished.
    `check_finite`: look for NaN and infinity (needless when checksums prove the bytes are those written,
    since writes refuse them).
    """
    digest = attrs.get("digest")
    if digest is None:
        if requires_digest:
            return "incomplete: its write never finished (no content digest)"
    elif verify_digest and content_digest(features) != attr_text(digest):
        return "damaged: its bytes differ from the digest recorded when it was written"
    if check_finite and not all_finite(features):
        return "damaged: its features hold NaN or infinite values"
    return None


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
