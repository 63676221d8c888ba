"""Several feature files read as one collection for `s2vs dedup`: each id once, one extractor, and the frames of
each video that take part in matching (boilerplate and low-information frames left out: scoring/common_frames.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, FeatureStoreError
from ..scoring.common_frames import CommonFrames
from ..storage.index import StoreStamp
from ..storage.store import FeatureStore, StoreIdentity
from .search import check_feature_file


class Collection:
    """Feature files read as one collection: each id once, in the files' order, then each file's own."""

    def __init__(self, paths: list[str | Path]):
        self.paths = [check_feature_file(str(path)) for path in paths]
        seen: dict[Path, Path] = {}
        for path in self.paths:
            if seen.setdefault(path.resolve(), path) is not path:
                raise ConfigError(f"{path} is given twice (as {seen[path.resolve()]} too): give each file once")
        self.common: CommonFrames | None = None  # what is left out of matching (None: every frame is used)
        self._kept: dict[str, np.ndarray] = {}  # each video's frames used in matching, once it was read
        self.stores: list[FeatureStore] = []
        self.ids: list[str] = []
        self.home: dict[str, FeatureStore] = {}
        # the first file's stamp before its ids are listed: the index takes the listing while the file has it
        self.stamp = StoreStamp.of(self.paths[0]) if self.paths else None
        try:
            for path in self.paths:
                store = FeatureStore(path)
                self.stores.append(store)
                for video_id in store.ids():
                    if video_id in self.home:
                        raise FeatureStoreError(f"'{video_id}' is in both {self.home[video_id].path} and {path}: "
                                                "an id may be in only one of the feature files")
                    self.home[video_id] = store
                    self.ids.append(video_id)
            self.identity = _shared_identity(self.stores)
        except BaseException:
            self.close()
            raise

    @property
    def random_weights(self) -> bool:
        """Whether any of the files says its features came from seeded random weights."""
        return any(store.random_weights for store in self.stores)

    def fps(self, video_id: str) -> float:
        """The sampling rate of the file holding `video_id` (1 fps for files that record none)."""
        identity = self.home[video_id].identity
        return identity.fps if identity is not None else 1.0

    def features(self, video_id: str) -> np.ndarray:
        """A video's features [T, R, D] as its pairs are scored: the frames used in matching (`common` leaves out
        boilerplate and low-information frames; a video all of them keeps every frame)."""
        features = self.home[video_id].read_features(video_id)
        if self.common is None:
            return features
        if video_id not in self._kept:
            keep = self.common.keep(features)
            self._kept[video_id] = keep if keep.any() else np.ones(len(features), dtype=bool)
        return features[self._kept[video_id]]

    def times(self, video_id: str) -> tuple[np.ndarray, float]:
        """(frame times, sampling rate) of the frames `features` gave for the video (all of them before it is read)."""
        times, fps = self.home[video_id].times(video_id, self.fps(video_id))
        kept = self._kept.get(video_id)
        return (np.asarray(times) if kept is None else np.asarray(times)[kept]), fps

    def kept(self, video_id: str) -> np.ndarray | None:
        """Which of the video's frames `features` used (None: before it is read, or with every frame used)."""
        return self._kept.get(video_id)

    def left_out(self, video_id: str) -> int:
        """Frames of the video left out of matching (0 before it is read, or with every frame used)."""
        kept = self._kept.get(video_id)
        return 0 if kept is None else int((~kept).sum())

    def left_out_seconds(self, video_id: str) -> float:
        """Seconds of the video left out of matching: its left-out frames, each one sampling interval long."""
        return self.left_out(video_id) / self.fps(video_id)

    def close(self) -> None:
        """Close every file."""
        for store in self.stores:
            store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shared_identity(stores: list[FeatureStore]) -> StoreIdentity | None:
    """The extractor every file records (ConfigError naming two that differ); None when none records one."""
    known = [store for store in stores if store.identity is not None]
    for store in known[1:]:
        differences = known[0].identity.differences(store.identity)
        if differences:
            raise ConfigError(f"{store.path} was made with other settings than {known[0].path}, which this run "
                              f"follows: {'; '.join(differences)}; only features of one extractor compare")
    return known[0].identity if known else None
