"""`s2vs evaluate`: a benchmark's metrics (the paper's table) for a model."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import options
from .common import check_writable, console, download_progress, load_config, reported_errors, stdout, write_results


def evaluate(
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", metavar="NAME", help="FIVR-5K, FIVR-200K, VCDB, EVVE, CC_WEB_VIDEO, or custom (with "
                                          "--ground-truth).  \\[default: FIVR-5K]")] = None,
    dataset_hdf5: Annotated[Optional[str], typer.Option(
        "--dataset-hdf5", metavar="FEATURES.hdf5",
        help="Features of the benchmark's videos: from extract-features or the published files.")] = None,
    from_similarities: Annotated[Optional[str], typer.Option(
        "--from-similarities", metavar="FILE", help="Score saved similarities (.json or .h5) instead of "
                                                    "computing them.")] = None,
    save_similarities: Annotated[Optional[str], typer.Option(
        "--save-similarities", metavar="FILE",
        help="Save the similarities ({query: {target: score}}; .json or .h5) to re-score later.")] = None,
    dataset_path: Annotated[Optional[str], typer.Option(
        "--dataset-path", metavar="DIR", help="Raw videos instead of --dataset-hdf5: their features are "
                                              "extracted first (see --save-features).")] = None,
    pattern: options.Pattern = None,
    loader: options.Loader = None,
    workers: options.Workers = None,
    save_features: Annotated[Optional[str], typer.Option(
        "--save-features", metavar="FILE.hdf5",
        help="With --dataset-path: keep the extracted features here (and resume into it); default: a "
             "temporary file.")] = None,
    annotations: options.Annotations = None,
    ground_truth: Annotated[Optional[str], typer.Option(
        "--ground-truth", metavar="GT.json",
        help='Custom ground truth: {"queries": \\[...], "database": \\[...], "positives": {query: \\[ids]}}.')] = None,
    easy_duplicates: Annotated[Optional[str], typer.Option(
        "--easy-duplicates", metavar="FILE", help="FIVR's easy-duplicates list, instead of downloading it.")] = None,
    distractors: Annotated[Optional[bool], typer.Option(
        "--distractors", help="VCDB: add the distractor videos to the database.  \\[default: off]")] = None,
    strict: Annotated[Optional[bool], typer.Option(
        "--strict", help="Stop when queries or database videos are missing, instead of counting them.")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="RESULTS.json", help="Write every number (and what was missing) as JSON.")] = None,
    features_only: options.FeaturesOnly = None,
    model: options.Model = None,
    backbone_weights: options.BackboneWeights = None,
    pca: options.Pca = None,
    device: options.Device = None,
    precision: options.Precision = None,
    fps: options.Fps = None,
    batch_size: options.BatchSize = None,
    seed: options.Seed = None,
    config: options.Config = None,
    print_config: options.PrintConfig = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Evaluate a model on a benchmark: the paper's metrics, missing videos counted.

    Example: [bold]s2vs evaluate --dataset FIVR-5K --dataset-hdf5 fivr_5k.hdf5[/]
    """
    with reported_errors():
        from ..config import EvaluateConfig

        cfg = load_config(EvaluateConfig, config, print_config, dataset=dataset, dataset_hdf5=dataset_hdf5,
                          annotations=annotations, ground_truth=ground_truth, easy_duplicates=easy_duplicates,
                          distractors=distractors, strict=strict, features_only=features_only, model=model,
                          device=device, precision=precision, seed=seed, dataset_path=dataset_path,
                          pattern=pattern, loader=loader, workers=workers, save_features=save_features,
                          backbone_weights=backbone_weights, pca=pca, fps=fps, batch_size=batch_size)
        from ..errors import ConfigError
        from ..jobs.evaluate import (PAPER_RESULTS, evaluate_benchmark, evaluate_segments, load_ground_truth,
                                  score_benchmark)
        from ..scoring.retrieval import VideoScorer, load_similarities, save_similarities as save
        from ..runtime import resolve_device, resolve_precision

        sources = [cfg.dataset_hdf5, cfg.dataset_path, from_similarities]
        if sum(source is not None for source in sources) != 1:
            raise ConfigError("give the features (--dataset-hdf5 FILE), the videos (--dataset-path DIR) or saved "
                              "similarities (--from-similarities FILE), one of the three")
        if cfg.save_features is not None and cfg.dataset_path is None:
            raise ConfigError("--save-features goes with --dataset-path")
        if cfg.dataset_hdf5 is not None and Path(cfg.dataset_hdf5).is_dir():
            raise ConfigError(f"{cfg.dataset_hdf5}: is a folder; give the feature file (FEATURES.hdf5)")
        if cfg.dataset_hdf5 is not None and not Path(cfg.dataset_hdf5).is_file():
            raise ConfigError(f"{cfg.dataset_hdf5}: feature file not found")  # now, not after loading the model
        check_writable(output, save_similarities)  # before hours of scoring, not after
        quiet = quiet or json_output
        with download_progress(quiet) as progress:
            benchmark = load_ground_truth(cfg.dataset, cfg.annotations, cfg.ground_truth, cfg.distractors, progress)
            if from_similarities is not None:
                similarities, label = load_similarities(from_similarities), f"similarities from {from_similarities}"
            else:
                from ..models.loading import load_similarity_network

                run_device = resolve_device(cfg.device)
                network = None if cfg.features_only else load_similarity_network(cfg.model, run_device, cfg.seed,
                                                                                 progress)
                label = "features only" if network is None else network.label
                scorer = VideoScorer(network, run_device, resolve_precision(cfg.precision, run_device))
        temporary = None
        if cfg.dataset_path is not None:
            features_file, temporary = _extract(benchmark, cfg, quiet)
            cfg.dataset_hdf5 = str(features_file)
        if from_similarities is None:
            columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console, transient=True, disable=quiet) as bar:
                task = bar.add_task("score", total=None)
                scored = score_benchmark(benchmark, cfg.dataset_hdf5, scorer,
                                         progress=lambda done, total: bar.update(task, completed=done, total=total))
            similarities = scored.similarities
        annotated = getattr(benchmark, "segments", None)
        located = None
        if annotated and from_similarities is None:
            columns = (TextColumn("locating segments"), *columns[1:])
            with Progress(*columns, console=console, transient=True, disable=quiet) as bar:
                task = bar.add_task("locate", total=len(annotated))
                located = evaluate_segments(annotated, cfg.dataset_hdf5, scorer,
                                            progress=lambda done, total: bar.update(task, completed=done))
        if temporary is not None:
            temporary.cleanup()
        if save_similarities is not None:
            save(save_similarities, similarities)
        result = evaluate_benchmark(benchmark, similarities, cfg.strict, cfg.easy_duplicates)
        summary = result.as_dict() | {"model": label, "dataset": benchmark.name}
        if located is not None:
            summary["metrics"] |= located.metrics
            summary["segment_pairs"] = located.pairs
            summary["segment_pairs_missing"] = [list(pair) for pair in located.missing_pairs]
            summary["segments"] = [{"query": q, "target": t, "reported": [list(s) for s in located.predicted[(q, t)]],
                                    "annotated": [list(s) for s in annotated[(q, t)]]}
                                   for q, t in located.predicted]
        elif annotated:
            summary["segment_note"] = ("segment metrics need features (--dataset-hdf5 or --dataset-path), "
                                       "not saved similarities")
        reference = PAPER_RESULTS.get((cfg.model, benchmark.name)) if label == cfg.model else None
        if reference:
            summary["paper"] = reference
        write_results(output, summary)
    if json_output:
        print(json.dumps(summary))
        return
    _render(summary)


def _render(summary: dict) -> None:
    table = Table(title=summary["dataset"], caption=f"model: {escape(summary['model'])}", title_justify="left",
                  caption_justify="left")
    table.add_column("metric")
    table.add_column("s2vs", justify="right")
    paper = summary.get("paper", {})
    if paper:
        table.add_column("paper", justify="right")
    for name, value in summary["metrics"].items():
        table.add_row(name, f"{value:.4f}", *([f"{paper[name]:.3f}" if name in paper else ""] if paper else []))
    stdout.print(table)
    missing_q, missing_d = summary["missing_queries"], summary["missing_database"]
    console.print(f"{summary['queries']} queries and {summary['database']} database videos evaluated", highlight=False)
    if "segment_pairs" in summary:
        lost = summary["segment_pairs_missing"]
        console.print(f"segments located on {summary['segment_pairs']} annotated pairs"
                      + (f" ({len(lost)} left out: a video is missing)" if lost else ""), highlight=False)
    if "segment_note" in summary:
        console.print(f"[yellow]note:[/] {summary['segment_note']}", highlight=False)
    if missing_q or missing_d:
        example = (missing_q or missing_d)[0]
        console.print(f"[yellow]note:[/] missing: {len(missing_q)} queries and {len(missing_d)} database videos "
                      f"(e.g. {escape(example)}); they leave the relevant sets as in the original (--strict "
                      "to refuse)", highlight=False, soft_wrap=True)


def _extract(benchmark, cfg, quiet: bool):
    """Features of the benchmark's videos under --dataset-path -> (feature file, temporary folder or None)."""
    import tempfile

    from ..jobs.extract_features import ExtractionOptions
    from ..jobs.evaluate import extract_benchmark_features
    from ..models.loading import load_extractor
    from ..runtime import resolve_device, resolve_precision
    from ..storage.store import StoreIdentity
    from ..models.weights import package_version
    from ..jobs.parallel import default_workers
    from .bulk import report_failures, video_progress

    temporary = None
    if cfg.save_features is None:
        temporary = tempfile.TemporaryDirectory(prefix="s2vs-evaluate-")
    output = Path(cfg.save_features) if cfg.save_features else Path(temporary.name) / "features.hdf5"
    run_device = resolve_device(cfg.device)
    with download_progress(quiet) as progress:
        extractor = load_extractor(cfg.backbone_weights, cfg.pca, run_device, cfg.seed, progress)
    run_options = ExtractionOptions(fps=cfg.fps, loader=cfg.loader, precision=resolve_precision(cfg.precision, run_device),
                                    batch_size=cfg.batch_size, compiled=cfg.compile,
                                    workers=default_workers() if cfg.workers is None else cfg.workers)
    identity = StoreIdentity(extractor.backbone_label, extractor.whitening_label, cfg.fps, extractor.dims, cfg.loader)
    with video_progress(quiet, "extracting") as bar:
        summary = extract_benchmark_features(benchmark, cfg.dataset_path, cfg.pattern, cfg.loader, output,
                                             extractor, identity, package_version(), run_options,
                                             progress=lambda c: bar.update(c.done, c.failed, c.frames, c.total))
    if not quiet:
        report_failures(summary.failures, "the missing counts below" if temporary else
                        str(output) + ".failed.tsv")
    return output, temporary
