"""The range every video similarity lies in, [-1, 1], what a score outside it means, and the layout many
similarities come in (`Similarities`, the original tool's {query: {target: score}}).

The network ends in Hardtanh (docs/METHOD.md §3), and features-only Chamfer averages inner products of unit
vectors (stored ones are checked to be unit within 1% on every read, storage/integrity.py). So a score outside
[-1, 1] by more than rounding (float16 storage, bf16 products: well under ROUNDING_SLACK) comes only from
damage: it is an error naming the pair, never ranked, printed or written. Within the slack it is clipped.
"""
from __future__ import annotations

from collections.abc import Mapping

Similarities = Mapping[str, Mapping[str, float]]  # {query: {target: score}}, the original tool's layout

SIMILARITY_RANGE = (-1.0, 1.0)
ROUNDING_SLACK = 0.03  # |x| <= 1.01 a vector read: a Chamfer score within 1.0201, and bf16 products add < 0.005


def bounded_similarity(score: float) -> float | None:
    """`score` within SIMILARITY_RANGE (clipped when it passes a bound by rounding only); None when it is NaN or
    further out, which only damage can make."""
    low, high = SIMILARITY_RANGE
    if not low - ROUNDING_SLACK <= score <= high + ROUNDING_SLACK:  # NaN fails it too
        return None
    return min(max(score, low), high)
