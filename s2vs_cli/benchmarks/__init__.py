"""The benchmarks: each one's definition, annotation loader and metrics in one module (fivr, vcdb, evve,
cc_web, custom), named in registry.py; VSC 2022's metrics and CSV files (vsc) and the challenge as a benchmark
(vsc22, its ground truth given by the user); shared pieces: annotation files (files),
ranking metrics (retrieval_metrics), similarities as a matrix (scores) and segment metrics (segments)."""
from .benchmark import Benchmark, Evaluation, EvaluationError, Similarities
from .cc_web import CCWebBenchmark, evaluate_cc_web
from .custom import CustomBenchmark, evaluate_custom, load_custom_ground_truth, validate_ground_truth
from .evve import EVVEBenchmark, evaluate_evve
from .files import AnnotationError, annotation_path, read_pickle
from .fivr import FIVRBenchmark, evaluate_fivr, load_easy_duplicates, load_official_fivr200k_annotation
from .registry import BENCHMARK_NAMES, BENCHMARKS, canonical_name, evaluate, load_benchmark
from .retrieval_metrics import (average_precision, average_precision_from_ranks, micro_average_precision,
                                ranking, recall_at_k, trapezoid_average_precision)
from .segments import SegmentBounds, covered_time, interval_union, overlap_time, segment_precision_recall
from .vcdb import VCDBBenchmark, evaluate_vcdb
from .vsc import (CopiedSegment, ScoredPair, VideoSets, best_per_pair, pair_micro_ap, read_pairs, read_segments,
                  read_video_ids, segment_micro_ap, write_pairs, write_segments)
from .vsc22 import VSC22Benchmark, is_vsc22, load_vsc22, predicted_pairs, video_sets

__all__ = [
    "BENCHMARKS", "BENCHMARK_NAMES", "AnnotationError", "Benchmark", "CCWebBenchmark", "CustomBenchmark",
    "EVVEBenchmark", "Evaluation", "EvaluationError", "FIVRBenchmark", "SegmentBounds", "Similarities",
    "VCDBBenchmark", "annotation_path", "average_precision", "average_precision_from_ranks", "canonical_name",
    "covered_time", "evaluate", "evaluate_cc_web", "evaluate_custom", "evaluate_evve", "evaluate_fivr",
    "evaluate_vcdb", "interval_union", "load_benchmark", "load_custom_ground_truth", "load_easy_duplicates",
    "load_official_fivr200k_annotation", "micro_average_precision", "overlap_time", "ranking", "read_pickle",
    "recall_at_k", "segment_precision_recall", "trapezoid_average_precision", "validate_ground_truth",
    "CopiedSegment", "ScoredPair", "best_per_pair", "pair_micro_ap", "read_pairs", "read_segments",
    "segment_micro_ap", "VideoSets", "read_video_ids", "write_pairs", "write_segments", "VSC22Benchmark", "is_vsc22",
    "load_vsc22", "predicted_pairs", "video_sets",
]
