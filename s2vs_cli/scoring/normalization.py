"""Score normalization with a noise set, in the spirit of the VSC 2022 baseline's (CSLS-style).

A query that resembles many videos (a talking head, a test card, a logo) scores high against everything,
copies or not; one score threshold shared by all queries then fails on it. With a noise set, features of
videos known to be unrelated to the queries, each query gets an offset: β times its similarity to its
k-th nearest noise video. Every score of that query is lowered by it:

    normalized(q, t) = similarity(q, t) - β · similarity(q, k-th nearest noise video of q)

A query that looks like anything loses much, a distinctive one little, so scores of different queries
become comparable (which µAP and a calibrated threshold need; one query's ranking does not change). The
baseline adds the same term per frame descriptor with k = 1; here it is one term per video, from the
video-level similarity s2vs already computes (ViSiL, or Chamfer in features-only mode), so the noise
videos are scored against each query exactly as database videos are. The defaults (k = 10, β = 1) are
measured on planted copies (benchmarks/bench_normalization.py, BENCHMARKS.md): with k = 1 one noise video
of the query's own scene (a static camera, one room) takes a copy's score away; the 10th nearest does not.
Library code: numpy, torch, the standard library and the package's own modules.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, FeatureStoreError
from ..progress import SILENT, Progress
from ..storage.store import FeatureStore, StoreIdentity
from .retrieval import FrameSelect, Similarities, VideoScorer, read_video, score_prepared


@dataclass(frozen=True)
class NoiseNormalization:
    """How scores were normalized: which noise set (its file's name, a digest of its videos), k and β."""

    noise: str      # the noise feature file, as it was named
    digest: str     # of its video ids and contents: the same set wherever the file is moved
    videos: int     # noise videos scored
    k: int          # the k-th nearest noise video gives the offset
    beta: float     # β: the share of that similarity taken off

    def as_dict(self) -> dict:
        """JSON-ready (what a thresholds file records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> NoiseNormalization:
        """Read back what as_dict wrote; KeyError/TypeError/ValueError when it is not that."""
        return cls(noise=str(data["noise"]), digest=str(data["digest"]), videos=int(data["videos"]),
                   k=int(data["k"]), beta=float(data["beta"]))

    def describe(self) -> str:
        """'noise.hdf5 (40 videos), k 1, β 1.0'."""
        return f"{Path(self.noise).name} ({self.videos} videos), k {self.k}, β {self.beta:g}"

    def same_as(self, other: NoiseNormalization | None) -> bool:
        """Whether scores normalized by `other` are normalized the same way (same noise videos, k and β)."""
        return other is not None and (self.digest, self.k, self.beta) == (other.digest, other.k, other.beta)


def noise_offsets(query_to_noise: Similarities, k: int, beta: float) -> dict[str, float]:
    """β × each query's similarity to its k-th nearest noise video (k = 1: the nearest)."""
    if k < 1:
        raise ConfigError(f"normalize_k must be at least 1, got {k}")
    offsets = {}
    for query, scores in query_to_noise.items():
        if len(scores) < k:
            raise ConfigError(f"normalize_k is {k} but only {len(scores)} noise videos were scored against "
                              f"'{query}'; give a larger noise set or a smaller k")
        offsets[query] = beta * sorted(scores.values(), reverse=True)[k - 1]
    return offsets


def normalize_similarities(similarities: Similarities, offsets: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Each query's scores less its offset ({query: {target: score}}; every query needs an offset)."""
    return {query: {target: score - offsets[query] for target, score in scores.items()}
            for query, scores in similarities.items()}


class NoiseSet:
    """An opened noise feature file: scores prepared queries against all of its videos, gives offsets."""

    def __init__(self, path: str | Path, k: int, beta: float):
        self.path, self.k, self.beta = Path(path), k, beta
        if self.path.is_dir():
            raise FeatureStoreError(f"{self.path}: is a folder; give the noise feature file (NOISE.hdf5)")
        if not self.path.is_file():
            raise FeatureStoreError(f"{self.path}: noise feature file not found")
        self.store = FeatureStore(self.path)
        try:
            frames_digests = {i: self.store.frames_and_digest(i) for i in self.store.ids()}
            self.ids = [i for i, (frames, _) in frames_digests.items() if frames > 0]
            if len(self.ids) < k:
                raise ConfigError(f"{self.path}: normalize_k is {k} but the noise set holds {len(self.ids)} "
                                  "videos; give a larger noise set or a smaller k")
            self.digest = _set_digest({i: frames_digests[i] for i in self.ids})
        except Exception:
            self.store.close()
            raise

    @property
    def identity(self) -> StoreIdentity | None:
        """What made the noise features (None: the file does not say)."""
        return self.store.identity

    @property
    def record(self) -> NoiseNormalization:
        """What a thresholds file records of this normalization."""
        return NoiseNormalization(str(self.path), self.digest, len(self.ids), self.k, self.beta)

    def check_fits(self, identity: StoreIdentity | None, features: str | Path) -> None:
        """ConfigError unless the noise was made as the scored features were (`identity`, read from `features`)."""
        if identity is None or self.identity is None:
            return
        theirs = dataclasses.replace(self.identity, loader=identity.loader, dtype=identity.dtype)
        differences = identity.differences(theirs)
        if differences:
            raise ConfigError(f"{self.path} was made with other settings than {features}: "
                              f"{'; '.join(differences).replace('this run', Path(features).name)}")

    def check_unrelated(self, ids: Collection[str], scored: str) -> None:
        """ConfigError when a noise video is also one of the scored videos (`ids`, from `scored`): the noise
        must be independent of what it normalizes (the VSC 2022 rule)."""
        shared = sorted(set(self.ids) & set(ids))
        if shared:
            raise ConfigError(f"{self.path}: '{shared[0]}' is also in {scored} ({len(shared)} shared videos); "
                              "the noise must be videos unrelated to the queries and the database")

    def similarities(self, queries: Mapping[str, torch.Tensor], scorer: VideoScorer,
                     progress: Progress = SILENT) -> Similarities:
        """Scores of prepared queries (VideoScorer.prepare_query) against every noise video."""
        return score_prepared(self.store, dict(queries), self.ids, scorer, progress)

    def offsets(self, queries: Mapping[str, torch.Tensor], scorer: VideoScorer,
                progress: Progress = SILENT) -> dict[str, float]:
        """β × each prepared query's similarity to its k-th nearest noise video."""
        return noise_offsets(self.similarities(queries, scorer, progress), self.k, self.beta)

    def close(self) -> None:
        """Close the noise feature file."""
        self.store.close()

    def __enter__(self) -> NoiseSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def normalize_with_noise(similarities: Similarities, query_features: str | Path, queries: Sequence[str],
                         noise_file: str | Path, scorer: VideoScorer, k: int, beta: float,
                         progress: Progress = SILENT, select: FrameSelect | None = None
                         ) -> tuple[dict[str, dict[str, float]], NoiseNormalization]:
    """`similarities` normalized with the noise set in `noise_file`: each query's (read from the feature file
    `query_features`, its frames as `select` gives them, as scored) offset subtracted from its scores ->
    (normalized similarities, what was done).

    Only the queries present in `similarities` are read and scored against the noise. The noise must be
    made by the same extractor as `query_features` and share no video with the queries or their targets.
    """
    scored = [q for q in dict.fromkeys(queries) if q in similarities]
    targets = {t for q in scored for t in similarities[q]}
    with NoiseSet(noise_file, k, beta) as noise, FeatureStore(query_features) as store:
        noise.check_fits(store.identity, query_features)
        noise.check_unrelated(set(scored) | targets, str(query_features))
        progress.stage("scoring the noise set", len(noise.ids), unit="videos")
        prepared = {q: scorer.prepare_query(read_video(store, q, select)) for q in scored}
        offsets = noise.offsets(prepared, scorer, progress)
        return normalize_similarities({q: similarities[q] for q in scored}, offsets), noise.record


def _set_digest(videos: Mapping[str, tuple[int, str | None]]) -> str:
    """A digest of a set of videos: their ids with each one's content digest (or frame count when the file
    records none), in sorted order."""
    digest = hashlib.sha256()
    for video_id in sorted(videos):
        frames, content = videos[video_id]
        digest.update(f"{video_id}\0{content or frames}\n".encode())
    return digest.hexdigest()[:16]
