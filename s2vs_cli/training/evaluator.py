"""The mAP of the network being trained, every few steps, on a custom ground truth (--eval-ground-truth).

The backbone is frozen, so the evaluation videos' region features never change: they are extracted once
into the experiment folder (EVAL_FEATURES, resumable; jobs/train.py's `training_evaluator` does it) and
only rescored each time.
"""
from __future__ import annotations

from pathlib import Path

from ..datasets.custom import CustomBenchmark, evaluate_custom
from ..models.visil import ViSiL
from ..runtime import Runtime
from ..scoring.retrieval import VideoScorer, score_store
from ..storage.bookkeeping import ExtractionSummary

EVAL_FEATURES = "eval_features.hdf5"


class TrainingEvaluator:
    """Scores a network on the ground truth's videos: `evaluator(network)` -> {'mAP': ..., 'uAP': ...}."""

    def __init__(self, benchmark: CustomBenchmark, features: str | Path, runtime: Runtime,
                 extraction: ExtractionSummary | None = None):
        self.runtime = runtime
        self.benchmark = benchmark
        self.features = Path(features)      # the ground truth's videos, extracted by the frozen backbone
        self.extraction = extraction        # what their extraction did

    def __call__(self, network: ViSiL) -> dict[str, float]:
        """The custom-ground-truth metrics of `network` (in whatever mode it is in)."""
        scorer = VideoScorer(network, self.runtime.device, self.runtime.precision)
        scored = score_store(str(self.features), self.benchmark.queries, self.benchmark.database, scorer)
        return evaluate_custom(self.benchmark, scored.similarities).metrics


def evaluated(network: ViSiL, evaluate) -> dict[str, float]:
    """`evaluate(network)` in eval mode, and back to training."""
    network.eval()
    try:
        return evaluate(network)
    finally:
        network.train()
