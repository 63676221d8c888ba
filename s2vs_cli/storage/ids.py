"""Video ids as the keys of a feature file: which ids one file can hold together.

HDF5 keeps an id with '/' in nested groups (CC_WEB_VIDEO's 'set/name', as the original tool did), so 'a'
and 'a/b' cannot both be stored: 'a' would have to be a video (a dataset) and the group holding 'a/b'.
Such a pair is refused before any work (media/inputs.py among the inputs, jobs/extract_features.py
against the ids already stored); a merge that meets one keeps the first and lists the other (parts.py).
"""
from __future__ import annotations

from collections.abc import Iterable


class NestedIds:
    """Ids gathered one at a time, each checked against those before it for a nesting clash."""

    def __init__(self, ids: Iterable[str] = ()):
        self._videos: set[str] = set()
        self._groups: dict[str, str] = {}  # group path -> the first id held inside it
        for video_id in ids:
            self.add(video_id)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._videos

    def __len__(self) -> int:
        return len(self._videos)

    def clash(self, video_id: str) -> str | None:
        """The id held that `video_id` cannot be stored beside ('a' for 'a/b', 'a/b' for 'a'), or None."""
        if video_id in self._groups:
            return self._groups[video_id]
        return next((parent for parent in _parents(video_id) if parent in self._videos), None)

    def add(self, video_id: str) -> None:
        """Hold `video_id` (check `clash` first: a clashing id is added all the same)."""
        self._videos.add(video_id)
        for parent in _parents(video_id):
            self._groups.setdefault(parent, video_id)


def nesting_clashes(ids: Iterable[str], held: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(earlier id, id) for each of `ids` that cannot be stored beside one of `held` or an earlier one of `ids`."""
    gathered, clashes = NestedIds(held), []
    for video_id in ids:
        other = gathered.clash(video_id)
        if other is None:
            gathered.add(video_id)
        else:
            clashes.append((other, video_id))
    return clashes


def nesting_reason(first: str, second: str) -> str:
    """Why two ids cannot share a feature file, in words."""
    group, nested = (first, second) if len(first) < len(second) else (second, first)
    return f"a feature file keeps '{nested}' inside a group '{group}', which cannot also be a video"


def _parents(video_id: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']: the groups HDF5 makes to store it."""
    steps = video_id.split("/")
    return ["/".join(steps[:i]) for i in range(1, len(steps))]
