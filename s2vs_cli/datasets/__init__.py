"""The datasets (`--dataset`), each a benchmark: its definition, annotation loader and metrics in one module
(fivr, vcdb, evve, cc_web, custom, vsc22: the Video Similarity Challenge 2022, its ground truth given by the
user), named in registry.py; VSC 2022's metrics and CSV files (vsc) and what its review shows (vsc22_review);
what an evaluation run found (evaluation_result); the videos input options name (video_inputs); shared
pieces: annotation files (files), ranking metrics (retrieval_metrics), similarities as a matrix (scores) and
segment metrics (segments).

The names below are imported when first used, so that `s2vs --help` reads the registry's names without
loading numpy or torch.
"""
from __future__ import annotations

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "Benchmark": "benchmark",
    "Evaluation": "benchmark",
    "EvaluationError": "benchmark",
    "Similarities": "benchmark",
    "CCWebBenchmark": "cc_web",
    "evaluate_cc_web": "cc_web",
    "CustomBenchmark": "custom",
    "evaluate_custom": "custom",
    "load_custom_ground_truth": "custom",
    "validate_ground_truth": "custom",
    "EVVEBenchmark": "evve",
    "evaluate_evve": "evve",
    "AnnotationError": "files",
    "annotation_path": "files",
    "read_pickle": "files",
    "FIVRBenchmark": "fivr",
    "evaluate_fivr": "fivr",
    "load_easy_duplicates": "fivr",
    "load_official_fivr200k_annotation": "fivr",
    "DATASET_NAMES": "registry",
    "DATASETS": "registry",
    "canonical_name": "registry",
    "evaluate": "registry",
    "load_benchmark": "registry",
    "load_ground_truth": "registry",
    "benchmark_class": "registry",
    "average_precision": "retrieval_metrics",
    "average_precision_from_ranks": "retrieval_metrics",
    "micro_average_precision": "retrieval_metrics",
    "ranking": "retrieval_metrics",
    "recall_at_k": "retrieval_metrics",
    "trapezoid_average_precision": "retrieval_metrics",
    "SegmentBounds": "segments",
    "covered_time": "segments",
    "interval_union": "segments",
    "overlap_time": "segments",
    "segment_precision_recall": "segments",
    "VCDBBenchmark": "vcdb",
    "evaluate_vcdb": "vcdb",
    "CopiedSegment": "vsc",
    "ScoredPair": "vsc",
    "VideoSets": "vsc",
    "best_per_pair": "vsc",
    "pair_micro_ap": "vsc",
    "read_pairs": "vsc",
    "read_segments": "vsc",
    "read_video_ids": "vsc",
    "segment_micro_ap": "vsc",
    "write_pairs": "vsc",
    "write_segments": "vsc",
    "VSC22Benchmark": "vsc22",
    "load_vsc22": "vsc22",
    "predicted_pairs": "vsc22",
    "video_sets": "vsc22",
}
__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
