"""s2vs: self-supervised video similarity learning (S2VS) — library and command line.

Public API (imported lazily, so `s2vs --help` starts fast)::

    import s2vs_cli as s2vs
    extractor = s2vs.load_extractor()                  # ResNet-50 L3-iMAC + PCA whitening
    network = s2vs.load_similarity_network("s2vs_dns")  # or s2vs_vcdb, a checkpoint path, "random"
    features = s2vs.extract_video_features("a.mp4", extractor)
    result = s2vs.compare_videos("a.mp4", "b.mp4", extractor, network)
    print(result.similarity, result.segment)
    with s2vs.FeatureStore("features.hdf5") as store:  # what `s2vs extract-features` wrote
        record = store.read(store.ids()[0])            # .features [T, 9, 512], .timestamps
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_extractor": "models.loading",
    "load_similarity_network": "models.loading",
    "available_models": "models.weights",
    "extract_video_features": "jobs.compare",
    "compare_videos": "jobs.compare",
    "compare_features": "jobs.compare",
    "decode_video": "media.video",
    "ViSiL": "models.visil",
    "RegionExtractor": "models.extractor",
    "FeatureStore": "storage.store",
    "collect_inputs": "media.inputs",
    "extract_features": "jobs.extract_features",
    "ExtractionOptions": "jobs.extract_features",
    "VideoScorer": "scoring.retrieval",
    "score_store": "scoring.retrieval",
    "load_benchmark": "benchmarks.annotations",
    "load_custom_ground_truth": "benchmarks.annotations",
    "evaluate_benchmark": "jobs.evaluate",
    "open_index": "storage.index",
    "Searcher": "jobs.search",
    "stored_query": "jobs.search",
    "TrainConfig": "config",
    "train": "jobs.train",
    "load_training_videos": "jobs.train",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 's2vs_cli' has no attribute {name!r}")
