"""s2vs: self-supervised video similarity learning (S2VS, on ViSiL) — library and command line.

Quick start; seeded random weights run offline (their numbers mean nothing: use "imagenet", "vcdb" and
"s2vs_dns", downloaded once and cached, for real results)::

    import s2vs_cli as s2vs
    runtime = s2vs.Runtime.start("cpu")                    # "auto": cuda:LOCAL_RANK when CUDA is present
    runtime.load_models("random", "random", "random")      # backbone weights, whitening, similarity network
    result = s2vs.compare_videos("a.mp4", "b.mp4", runtime)
    print(result.similarity, result.segment)
    with s2vs.FeatureStore("features.hdf5") as store:      # what `s2vs extract-features` wrote
        record = store.read(store.ids()[0])                # .features [T, 9, 512], .timestamps

Public API (one line each; imported lazily, so `s2vs --help` starts fast):

Running models
    Runtime                 where and how models run: device, precision, compilation, the loaded models
    Progress                the progress protocol long functions report to (subclass it to show progress)
    load_extractor          the region extractor (ResNet-50 L3-iMAC + PCA whitening) from named or local weights
    load_similarity_network the ViSiL network: s2vs_dns, s2vs_vcdb, a checkpoint file or "random"
    available_models        names of the published similarity networks
    RegionExtractor         frames -> region features [T, 9, D]
    ViSiL                   region features of two videos -> their similarity
Reading video
    decode_video            frames of one video file sampled at a given fps
    video_facts             duration, size, frame rate, bit rate of a video file or frame folder, from headers
    collect_inputs          the videos (or frame folders) named by paths, folders, lists and patterns
    FrameSource             the decoder interface: implement it (one class, one registry line) for a new source
Features
    extract_video_features  region features of one video, in memory
    extract_features        region features of many videos into one HDF5 file, resumable
    ExtractionOptions       settings of extract_features (fps, frames per batch, workers, dtype ...)
    FeatureStore            read and write HDF5 feature files
    summarize_store         what a feature file holds (`s2vs info`), without reading features
Comparing and searching
    compare_videos          similarity of two video files and where they match
    compare_features        the same for features already extracted
    open_index              the faiss index of a feature file, built or brought up to date
    start_search            rank a collection against query videos (index, then ViSiL re-ranking)
    Searcher                the search engine behind start_search, for stored features
    stored_query            a query taken from a feature file
    run_dedup               every pair of a collection's videos that shares copied content, grouped (s2vs dedup)
    DedupConfig             the settings of run_dedup (model, thresholds, coverage, keeper rule ...)
Evaluating
    run_evaluation          everything `s2vs evaluate` does: extract or read features, score, metrics
    load_benchmark          a benchmark's ground truth (FIVR-5K/200K, VCDB, EVVE, CC_WEB_VIDEO)
    load_custom_ground_truth a ground truth of your own, from JSON
    evaluate_benchmark      a benchmark's metrics from query-target similarities
    VideoScorer             ViSiL (or features-only) scores of a query against many targets, batched
    score_store             every query of a benchmark scored against its database, from a feature file
Training
    TrainConfig             the training settings; defaults are the paper's
    load_training_videos    the videos or frame folders of a training run
    train                   self-supervised training of the ViSiL network
"""
from __future__ import annotations

from .lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Runtime": "runtime",
    "Progress": "progress",
    "load_extractor": "models.loading",
    "load_similarity_network": "models.loading",
    "available_models": "artifacts",
    "RegionExtractor": "models.extractor",
    "ViSiL": "models.visil",
    "decode_video": "media.video",
    "video_facts": "media.facts",
    "collect_inputs": "media.inputs",
    "FrameSource": "media.source",
    "extract_video_features": "scoring.pair",
    "extract_features": "jobs.extract_features",
    "ExtractionOptions": "storage.bookkeeping",
    "FeatureStore": "storage.store",
    "summarize_store": "storage.store_summary",
    "compare_videos": "jobs.compare",
    "compare_features": "scoring.pair",
    "open_index": "storage.index",
    "start_search": "jobs.search",
    "Searcher": "jobs.search",
    "stored_query": "jobs.search",
    "run_dedup": "jobs.dedup",
    "DedupConfig": "config",
    "run_evaluation": "jobs.evaluate",
    "load_benchmark": "datasets",
    "load_custom_ground_truth": "datasets",
    "evaluate_benchmark": "jobs.evaluate",
    "VideoScorer": "scoring.retrieval",
    "score_store": "scoring.retrieval",
    "TrainConfig": "config",
    "load_training_videos": "jobs.train",
    "train": "jobs.train",
}
__all__ = [*_EXPORTS, "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, defined=("__version__",))
