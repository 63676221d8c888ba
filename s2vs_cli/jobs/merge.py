"""Joining feature files, and checking one (rewriting it without its damaged videos): `s2vs merge`, `s2vs verify`.

Both write a feature file the way an extraction run does: under the output's lock (never while a run
writes it), after clearing what a killed run left, through one atomic merge (storage/parts.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import check_writable
from ..downloads import package_version
from ..errors import FeatureStoreError
from ..progress import SILENT, Progress
from ..storage.parts import MergeResult, complete_parts, merge_parts, output_lock, parts_dir_for
from ..storage.store import StoreCheck, read_identity, verify_store


@dataclass
class MergeSummary:
    """What `merge_features` did: the merge itself and how many files it read."""

    result: MergeResult
    sources: int


def merge_features(output: str | Path, parts: Sequence[str | Path] = (),
                   progress: Progress = SILENT) -> MergeSummary:
    """Join `parts` (default: the finished parts of an interrupted run, OUT.hdf5.parts/) into `output`.

    Existing videos of `output` are kept and the first copy of an id wins. A run's own parts that cannot
    be opened are dropped (their videos are redone) and removed once merged; files named in `parts` are
    never dropped in silence (an unreadable one is an error) and never removed.
    """
    output = Path(output)
    if output.is_dir():
        raise FeatureStoreError(f"{output}: is a folder; give the feature file to write (OUT.hdf5)")
    check_writable(output)  # a folder that takes no new file fails now, not after the reading
    named = [Path(p) for p in parts]
    parts_dir = parts_dir_for(output)
    if not named and not parts_dir.is_dir():
        raise FeatureStoreError(f"nothing to merge: no finished parts in {parts_dir}")
    with output_lock(output):
        sources = named or complete_parts(parts_dir)
        for source in sources:
            if source.is_dir():
                raise FeatureStoreError(f"{source}: is a folder; give feature files")
            if not source.is_file():
                raise FeatureStoreError(f"{source}: feature file not found")
        if not sources:
            raise FeatureStoreError(f"nothing to merge: no finished parts in {parts_dir}")
        known = [read_identity(p) for p in ([output] if output.exists() else []) + sources]
        identity = next((i for i in known if i is not None), None)
        if identity is not None and any(i is not None and i.random_weights for i in known):
            identity = replace(identity, random_weights=True)  # random anywhere: the whole file is
        progress.stage(f"merging {len(sources)} file(s)", unit="videos")
        result = merge_parts(output, sources, identity, package_version(), progress=progress,
                             drop_unreadable_parts=not named)
        if not named:
            for source in sources:
                source.unlink()
    return MergeSummary(result, len(sources))


def verify_features(path: str | Path, repair: bool = False,
                    progress: Progress = SILENT) -> tuple[StoreCheck, int | None]:
    """Check every video of the feature file `path`; with `repair`, rewrite it without the damaged ones.

    Returns the check and, when it was repaired, how many videos the file keeps (else None).
    """
    check = verify_store(path, progress)
    if not (repair and check.damaged):
        return check, None
    with output_lock(path):  # never while a run writes it
        progress.stage("repairing", unit="videos")
        return check, merge_parts(path, [], read_identity(path), package_version(), progress=progress).videos
