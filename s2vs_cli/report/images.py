"""The images a review document holds: encoded bytes (`ReportImage`), or a thumbnail asked for and not decoded
yet (`PendingImage`), filled in by the thumbnails' pass over each video (thumbnails.py)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportImage:
    """An encoded image the page shows: PNG or JPEG bytes and their file suffix."""

    data: bytes
    suffix: str  # "png" or "jpg"


class PendingImage:
    """A thumbnail requested but not decoded yet: resolved in one pass per video once the document is built."""

    __slots__ = ("image",)

    def __init__(self) -> None:
        self.image: ReportImage | None = None
