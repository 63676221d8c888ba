"""The steps every `s2vs evaluate` flow takes (evaluate.py's, and VSC22's in evaluate_vsc.py): the sources checked,
the models loaded, the feature file (given, kept or temporary), scoring, normalization, the completeness check.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..datasets.benchmark import Benchmark, Evaluation, Similarities
from ..datasets.registry import DATASETS, benchmark_class, find_name
from ..config import EvaluateConfig
from ..errors import ConfigError, FeatureStoreError, S2VSError
from ..progress import SILENT, Progress
from ..scoring.normalization import NoiseNormalization, normalize_with_noise
from ..scoring.retrieval import FrameSelect, ScoredCollection, VideoScorer, score_store
from ..storage.bookkeeping import ExtractionOptions
from ..workers.pool import default_workers


def check_sources(cfg: EvaluateConfig, from_similarities: str | None = None, from_matches: str | None = None,
                  save_matches: str | None = None) -> None:
    """ConfigError unless exactly one source is given (features, videos, saved similarities or, for a benchmark
    of segment predictions (VSC22), saved matches) and exists."""
    found = find_name(cfg.dataset)  # an unknown name is refused later, when the benchmark is loaded
    matches = found is not None and benchmark_class(found).segment_predictions
    if not matches and (from_matches is not None or save_matches is not None):
        takers = " or ".join(name for name in DATASETS if benchmark_class(name).segment_predictions)
        raise ConfigError(f"--{'from' if from_matches is not None else 'save'}-matches goes with --dataset {takers}")
    sources = [cfg.dataset_hdf5, cfg.dataset_path, from_similarities, from_matches]
    if sum(source is not None for source in sources) != 1:
        raise ConfigError("give the features (--dataset-hdf5 FILE), the videos (--dataset-path DIR) or saved "
                          "similarities (--from-similarities FILE)" + (" or matches (--from-matches FILE.csv)"
                                                                       if matches else "") + ", one of them")
    if cfg.save_features is not None and cfg.dataset_path is None:
        raise ConfigError("--save-features goes with --dataset-path")
    if cfg.normalize_with is not None and cfg.dataset_hdf5 is None and cfg.dataset_path is None:
        raise ConfigError("--normalize-with scores the queries' features against the noise: give --dataset-hdf5 "
                          "or --dataset-path, not saved similarities or matches")
    if save_matches is not None and cfg.dataset_hdf5 is None and cfg.dataset_path is None:
        raise ConfigError("--save-matches writes the segments located on features: give --dataset-hdf5 or "
                          "--dataset-path")
    for name, path in (("--save-matches", save_matches), ("--from-matches", from_matches)):
        if path is not None and Path(path).suffix.lower() != ".csv":
            raise ConfigError(f"{name} takes the challenge's CSV layout: a .csv file, not '{path}'")
    if cfg.dataset_hdf5 is not None and Path(cfg.dataset_hdf5).is_dir():
        raise FeatureStoreError(f"{cfg.dataset_hdf5}: is a folder; give the feature file (FEATURES.hdf5)")
    if cfg.dataset_hdf5 is not None and not Path(cfg.dataset_hdf5).is_file():
        raise FeatureStoreError(f"{cfg.dataset_hdf5}: feature file not found")  # now, not after loading the model


def normalize_scores(cfg: EvaluateConfig, similarities: Similarities, features: str | Path, queries: Sequence[str],
                     scorer: VideoScorer, progress: Progress = SILENT
                     ) -> tuple[Similarities, NoiseNormalization | None]:
    """`similarities` normalized with cfg's noise set (--normalize-with), or as they are without one."""
    if cfg.normalize_with is None:
        return similarities, None
    return normalize_with_noise(similarities, features, queries, cfg.normalize_with, scorer, cfg.normalize_k,
                                cfg.normalize_beta, progress)


def score_benchmark(benchmark: Benchmark, features: str | Path, scorer: VideoScorer,
                    progress: Progress = SILENT, select: FrameSelect | None = None) -> ScoredCollection:
    """Similarities of the benchmark's queries to its database, from a feature file (on the frames of each
    video that `select` gives: all of them when None)."""
    if not Path(features).is_file():
        raise S2VSError(f"{features}: feature file not found")
    progress.stage("scoring", len(benchmark.database), unit="videos")
    return score_store(str(features), benchmark.queries, benchmark.database, scorer, progress, select=select)


def check_complete(result: Evaluation, strict: bool = True) -> Evaluation:
    """`result` as it is; with `strict`, S2VSError when a query or database video was missing."""
    if strict and (result.missing_queries or result.missing_database):
        missing = [*result.missing_queries, *result.missing_database]
        raise S2VSError(f"{_count(len(result.missing_queries), 'queries')} and "
                        f"{_count(len(result.missing_database), 'database videos')} have no similarities "
                        f"(e.g. '{missing[0]}'); --strict refuses to evaluate without them")
    return result


def extraction_options(cfg: EvaluateConfig) -> ExtractionOptions:
    """The extraction options of `cfg` (decoding workers: one per CPU core, at most 8, by default)."""
    return ExtractionOptions(fps=cfg.fps, loader=cfg.loader, frames_per_batch=cfg.frames_per_batch,
                             workers=default_workers() if cfg.workers is None else cfg.workers)


@contextmanager
def feature_file(cfg: EvaluateConfig) -> Iterator[Path]:
    """The feature file to score: --dataset-hdf5, --save-features, or a temporary one deleted afterwards."""
    if cfg.dataset_path is None:
        yield Path(cfg.dataset_hdf5)
    elif cfg.save_features is not None:
        yield Path(cfg.save_features)
    else:
        with tempfile.TemporaryDirectory(prefix="s2vs-evaluate-") as folder:
            yield Path(folder) / "features.hdf5"


def _count(count: int, noun: str) -> str:
    """'1 query', '2 queries', '1 database video' (`noun` given in the plural)."""
    if count != 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-3] + 'y' if noun.endswith('ies') else noun[:-1]}"
