"""`s2vs calibrate` from start to end: the labelled set, its scores (from a feature file, normalized with a
noise set if asked, or saved similarities), its labelled pairs, the fitted threshold, the thresholds file.

`run_calibration(cfg, runtime)` is the one entry point; how the threshold is fitted and how many pairs a
claim needs is scoring/calibration.py's. The scores' identity (model, extractor, frame rate) is the one
`compare` and `search` check thresholds against: a feature file's StoreIdentity, or, for a file that
records none (the published ones) and for saved similarities, the extractor the options name.

Scores are made as search and dedup make them: without the common frames (boilerplate, low-information frames)
of the feature file scored, found from its own features (common_frames_of_store), unless keep_common_frames;
the file records which (`common_frames`). Saved similarities are evaluate's, of every frame: KEPT.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..artifacts import BACKBONE, NETWORK, WHITENING, choices
from ..datasets import Benchmark, CustomBenchmark, Similarities
from ..datasets.custom import validate_ground_truth
from ..datasets.scores import align, relevance
from ..config import CalibrateConfig, ExtractorOptions
from ..errors import ConfigError, FeatureStoreError
from ..models.backbone_registry import backbone_class
from ..models.loading import file_label
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.calibration import FEATURES_ONLY, KEPT, ScoreIdentity, Thresholds, common_frames_rule, fit_threshold
from ..scoring.common_frames import LeftOut
from ..scoring.common_frames_index import common_frames_of_store
from ..scoring.normalization import NoiseNormalization, normalize_with_noise
from ..scoring.retrieval import VideoScorer, load_similarities
from ..storage.decisions import load_decisions
from ..storage.store import FeatureStore, made_with_random_weights
from .evaluate import load_ground_truth, score_benchmark


def run_calibration(cfg: CalibrateConfig, runtime: Runtime, *, from_similarities: str | None = None,
                    output: str | None = None, progress: Progress = SILENT) -> Thresholds:
    """Fit the threshold reaching `cfg.target_precision` on the labelled set `cfg` names, scored as it says
    (the network, unless features only, is loaded onto `runtime`); write it to `output` when given."""
    check_sources(cfg, from_similarities)
    features = cfg.dataset_hdf5
    available = _stored_ids(features) if features is not None else ()
    if cfg.labels is not None:
        benchmark, unstored = labels_benchmark(cfg.labels, available)
    else:
        benchmark, unstored = load_ground_truth(dataset_name(cfg), cfg.annotations, cfg.ground_truth, cfg.distractors,
                                                progress, available=available), 0
    benchmark.copies()  # a benchmark without copy labels fails now, before any scoring
    normalization, stored_random, common_frames = None, False, common_frames_rule(cfg.keep_common_frames)
    if from_similarities is not None:
        similarities, scored_from = load_similarities(from_similarities), str(from_similarities)
        identity = ScoreIdentity(declared_model(cfg), *declared_extractor(cfg), cfg.fps,
                                 declared_weights(cfg, runtime))
        if common_frames != KEPT:
            progress.note("saved similarities are scores of every frame: these thresholds apply to runs with "
                          "--keep-common-frames")
        common_frames = KEPT
    else:
        runtime.prepare(cfg, videos=False)
        identity = store_score_identity(features, runtime.network, cfg)
        stored_random = made_with_random_weights(features)
        similarities, normalization = score_calibration_set(cfg, benchmark, runtime, progress)
        scored_from = str(features)
    thresholds = fit_thresholds(benchmark, similarities, cfg.target_precision, identity, normalization,
                                scored_from,
                                random_weights=runtime.random_weights or identity.random_weights or stored_random,
                                common_frames=common_frames)
    thresholds.calibration_set["missing_pairs"] += unstored
    if output is not None:
        thresholds.save(output)
    return thresholds


def score_calibration_set(cfg: CalibrateConfig, benchmark: Benchmark, runtime: Runtime, progress: Progress = SILENT
                          ) -> tuple[Similarities, NoiseNormalization | None]:
    """The labelled set's scores from `cfg.dataset_hdf5` by `runtime`'s network, made as search makes them: the
    file's common frames left out of every video, query or not (unless cfg.keep_common_frames), normalized with
    cfg's noise set if any -> (similarities, the normalization)."""
    features, select = cfg.dataset_hdf5, None
    if not cfg.keep_common_frames:  # the file's boilerplate, found as search finds its database's without an index
        select = LeftOut(common_frames_of_store(features, progress)).select
    scorer = VideoScorer(runtime.network, runtime.device, runtime.precision)
    similarities = score_benchmark(benchmark, features, scorer, progress, select).similarities
    if cfg.normalize_with is None:
        return similarities, None
    return normalize_with_noise(similarities, features, benchmark.queries, cfg.normalize_with, scorer,
                                cfg.normalize_k, cfg.normalize_beta, progress, select)


def fit_thresholds(benchmark: Benchmark, similarities: Similarities, target_precision: float,
                   identity: ScoreIdentity, normalization: NoiseNormalization | None = None,
                   scored_from: str | None = None, random_weights: bool = False,
                   common_frames: str = KEPT) -> Thresholds:
    """The thresholds fitted on `benchmark`'s labelled pairs scored by `similarities` (made as `identity`
    says, normalized as `normalization` says, with the common frames kept or left out as `common_frames` says)."""
    scores, is_copy, missing = labelled_pairs(benchmark, similarities, scored_from)
    name = Path(benchmark.source).name if benchmark.name == "custom" and benchmark.source else benchmark.name
    fit = fit_threshold(scores, is_copy, target_precision, name)
    calibration_set = {"name": benchmark.name, "file": None if benchmark.source is None else str(benchmark.source),
                       "scores": scored_from, "pairs": fit.pairs, "positives": fit.positives,
                       "accepted": fit.accepted, "missing_pairs": missing}
    return Thresholds(threshold=fit.threshold, target_precision=target_precision, precision=fit.precision,
                      recall=fit.recall, identity=identity, normalization=normalization,
                      calibration_set=calibration_set, version=__version__, random_weights=random_weights,
                      common_frames=common_frames)


def labelled_pairs(benchmark: Benchmark, similarities: Similarities,
                   scored_from: str | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores, is_copy, pairs without a score) of every labelled (query, database video) pair.

    A query is never paired with itself. A copy (Benchmark.copies) is a positive; every other pair is a
    negative, except that a custom ground truth listing `negatives` for a query judges only the positives
    and negatives it names for that query (as its metrics do). Pairs whose videos have no score (missing
    from the feature file) are counted and left out.
    """
    copies = benchmark.copies()
    negatives = benchmark.negatives if isinstance(benchmark, CustomBenchmark) else None
    aligned = align(similarities, benchmark.queries, benchmark.database, benchmark.name, scored_from)
    judged = ~aligned.own_column()
    for i, query in enumerate(aligned.queries):
        if negatives is not None and query in negatives:
            judged[i] &= aligned.mask(copies.get(query, frozenset()) | negatives[query])
    is_copy = relevance(aligned, (copies.get(q, ()) for q in aligned.queries))
    scored = ~np.isnan(aligned.matrix)
    missing = int((judged & ~scored).sum()) + len(aligned.missing_queries) * len(benchmark.database)
    keep = judged & scored
    return aligned.matrix[keep], is_copy[keep], missing


def check_sources(cfg: CalibrateConfig, from_similarities: str | None = None) -> None:
    """ConfigError unless the set and one source of scores are given, and the noise goes with features."""
    dataset_name(cfg)
    if cfg.labels is not None and cfg.dataset_hdf5 is None:
        raise ConfigError("--labels takes the features of its videos: give --dataset-hdf5 FILE")
    if (cfg.dataset_hdf5 is None) == (from_similarities is None):
        raise ConfigError("give the features of the set's videos (--dataset-hdf5 FILE) or saved similarities "
                          "(--from-similarities FILE), one of the two")
    if cfg.normalize_with is not None and from_similarities is not None:
        raise ConfigError("--normalize-with scores the queries' features against the noise: give --dataset-hdf5, "
                          "not saved similarities")
    if cfg.dataset_hdf5 is not None and Path(cfg.dataset_hdf5).is_dir():
        raise FeatureStoreError(f"{cfg.dataset_hdf5}: is a folder; give the feature file (FEATURES.hdf5)")
    if cfg.dataset_hdf5 is not None and not Path(cfg.dataset_hdf5).is_file():
        raise FeatureStoreError(f"{cfg.dataset_hdf5}: feature file not found")


def labels_benchmark(labels: str, available: Sequence[str]) -> tuple[CustomBenchmark, int]:
    """(the pairs of a decisions file with both videos in `available` as a custom ground truth, with the file as
    its source; how many of its pairs name a video not there)."""
    decisions, stored = load_decisions(labels), set(available)
    truth = decisions.as_ground_truth(stored)
    if not truth["queries"]:
        raise ConfigError(f"{labels}: none of its {len(decisions.labels)} pairs has both videos in the feature file")
    benchmark = dataclasses.replace(validate_ground_truth(truth), source=Path(labels))
    return benchmark, sum("label" in entry for entry in decisions.not_in(stored))


def dataset_name(cfg: CalibrateConfig) -> str:
    """The labelled set's name: --dataset, or 'custom' when only --ground-truth (or --labels) is given."""
    if cfg.labels is not None:
        if cfg.dataset is not None or cfg.ground_truth is not None:
            raise ConfigError("--labels is the labelled set: give it without --ground-truth or --dataset")
        return "custom"
    if cfg.dataset is not None:
        return cfg.dataset
    if cfg.ground_truth is None:
        raise ConfigError("give the labelled set: --ground-truth GT.json (your own), or --dataset NAME (a benchmark "
                          "that labels copies)")
    return "custom"


def store_score_identity(features: str | Path, network, options: ExtractorOptions) -> ScoreIdentity:
    """The identity of scores made by `network` (None: features only) on a feature file: its recorded
    extractor, or the one `options` name when it records none (the published files)."""
    with FeatureStore(features) as store:
        identity = store.identity
    if identity is not None:
        return ScoreIdentity.of_store(network, identity)
    return ScoreIdentity.of(network, *declared_extractor(options), options.fps)


def declared_extractor(options: ExtractorOptions) -> tuple[str, str]:
    """(backbone label, whitening label) of the extractor `options` name, as the loaded extractor labels
    itself (models/loading.py), without loading it: for scores whose files do not record it."""
    title = backbone_class(options.backbone).title
    backbone = _weights_label(options.backbone_weights, choices(BACKBONE), options.seed, "--backbone-weights")
    if options.pca == "none":
        return f"{title} {backbone}", "none"
    return f"{title} {backbone}", _weights_label(options.pca, choices(WHITENING), options.seed, "--pca")


def declared_model(cfg: CalibrateConfig) -> str:
    """The label of the model `cfg` names (what ScoreIdentity records), without loading it."""
    if cfg.features_only:
        return FEATURES_ONLY
    if cfg.model == "random":
        return f"random (seed {cfg.seed})"
    return cfg.model if cfg.model in choices(NETWORK) else str(Path(cfg.model).expanduser())


def declared_weights(cfg: CalibrateConfig, runtime: Runtime) -> str | None:
    """The weights digest of a checkpoint file `cfg` names (loaded into `runtime` for it), for scores made
    elsewhere; None for features only, random weights and published names, which their label fixes."""
    if cfg.features_only or cfg.model == "random" or cfg.model in choices(NETWORK):
        return None
    return runtime.load_network(cfg.model).weights_digest()


def _weights_label(spec: str, named: dict[str, str], seed: int, option: str) -> str:
    if spec == "random":
        return f"random (seed {seed})"
    if spec in named:
        return spec
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"{option} {spec}: not a published name, random or a file")
    return file_label(path)


def _stored_ids(features: str) -> list[str]:
    with FeatureStore(features) as store:
        return store.ids()
