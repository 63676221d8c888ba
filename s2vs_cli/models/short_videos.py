"""How short a video the ViSiL comparator takes, and how a shorter one is lengthened (docs/METHOD.md §1): its
frames repeated, doubling, as S2VS does. Kept apart from models/visil.py so that decoding needs no torch.
"""
from __future__ import annotations

# The comparator pools twice by 2: shorter videos are repeated to this many frames first (docs/METHOD.md §1).
COMPARATOR_MIN_FRAMES = 4


def repeat_factor(length: int, min_frames: int = COMPARATOR_MIN_FRAMES) -> int:
    """How many copies of a `length`-frame sequence reach `min_frames`, doubling as S2VS does (1 for none)."""
    repeated = 1
    while 0 < length * repeated < min_frames:
        repeated *= 2
    return repeated
