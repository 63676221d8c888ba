"""The mAP of the network being trained, every few steps, on a custom ground truth (--eval-ground-truth).

The backbone is frozen, so the evaluation videos' region features never change: they are extracted once
into the experiment folder (eval_features.hdf5, resumable) and only rescored each time.
"""
from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..models.visil import ViSiL
from ..progress import SILENT, Progress
from ..runtime import Runtime

EVAL_FEATURES = "eval_features.hdf5"


class TrainingEvaluator:
    """Scores a network on the ground truth's videos: `evaluator(network)` -> {'mAP': ..., 'uAP': ...}."""

    def __init__(self, cfg: TrainConfig, runtime: Runtime, progress: Progress = SILENT):
        from ..benchmarks import load_custom_ground_truth
        from ..jobs.evaluate import extract_benchmark_features
        from ..jobs.extract_features import ExtractionOptions

        if runtime.extractor is None:
            raise ValueError("the runtime has no extractor loaded: the evaluation videos need one")
        self.runtime = runtime
        self.benchmark = load_custom_ground_truth(cfg.eval_ground_truth)
        self.features = Path(cfg.experiment_path) / EVAL_FEATURES
        self.features.parent.mkdir(parents=True, exist_ok=True)
        options = ExtractionOptions(fps=cfg.fps, loader="video", workers=0)
        self.extraction = extract_benchmark_features(self.benchmark, cfg.eval_dataset_path, cfg.eval_pattern,
                                                     self.features, runtime, options, progress)

    def __call__(self, network: ViSiL) -> dict[str, float]:
        """The custom-ground-truth metrics of `network` (in whatever mode it is in)."""
        from ..benchmarks import evaluate_custom
        from ..scoring.retrieval import VideoScorer, score_store

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
