"""`s2vs calibrate`: the score threshold above which a pair is a copy, fitted on a labelled set."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options
from ..config import CalibrateConfig
from ..datasets.registry import COPY_LABEL_NAMES, DATASETS
from ..errors import ConfigError
from .common import check_writable, command_config, console, print_table, reported_errors, terminal_safe
from .progress import running

_READ_GROUND_TRUTH = " and ".join(name for name in COPY_LABEL_NAMES if not DATASETS[name].lists_videos)


@options.takes("keep_common_frames", "features_only", "model", "backbone", "backbone_weights", "pca", "device",
               "precision", "fps", "seed", "config", "print_config", "json_output", "quiet")
def calibrate(
    ground_truth: Annotated[Optional[str], typer.Option(
        "--ground-truth", metavar="GT.json",
        help='Your labelled set: {"queries": \\[...], "database": \\[...], "positives": {query: \\[copies]}} '
             '(optional "negatives", as for evaluate).', rich_help_panel=options.INPUT)] = None,
    labels: options.LabelsFile = None,
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", metavar="NAME", help=f"A benchmark that labels copies: {', '.join(COPY_LABEL_NAMES)} ({_READ_GROUND_TRUTH} with "
                                          "--ground-truth).",
        rich_help_panel=options.INPUT)] = None,
    annotations: options.Annotations = None,
    dataset_hdf5: Annotated[Optional[str], typer.Option(
        "--dataset-hdf5", metavar="FEATURES.hdf5", help="Features of the set's videos (from extract-features).",
        rich_help_panel=options.INPUT)] = None,
    from_similarities: Annotated[Optional[str], typer.Option(
        "--from-similarities", metavar="FILE",
        help="Saved similarities (.json or .h5) instead of features; the model and extractor options must "
             "say what made them.", rich_help_panel=options.INPUT)] = None,
    distractors: Annotated[Optional[bool], typer.Option(
        "--distractors", help="VCDB: add the distractor videos to the database (as non-copies).  \\[default: off]",
        rich_help_panel=options.INPUT)] = None,
    target_precision: Annotated[Optional[float], typer.Option(
        "--target-precision", metavar="P", help="Share of the pairs called copies that must be copies, on the "
                                                "set.  \\[default: 0.95]", rich_help_panel=options.SCORES)] = None,
    normalize_with: options.NormalizeWith = None,
    normalize_k: options.NormalizeK = None,
    normalize_beta: options.NormalizeBeta = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="THRESHOLDS.json", help="Where to write the thresholds (required unless --json).",
        rich_help_panel=options.OUTPUT)] = None,
    **shared,
) -> None:
    """Fit the score threshold above which a pair is a copy, for a target precision, on a labelled set.

    Every (query, database video) pair of the set is scored, as search and dedup score them: without the
    common frames (boilerplate, black or flat frames) of the feature file, unless [bold]--keep-common-frames[/];
    copies are positives, all other pairs negatives. The threshold is the lowest score at which at least the
    target share of the pairs scoring that much or more are copies; the file records it with the precision
    and recall measured there, the model and extractor it belongs to, any score normalization and whether
    common frames were left out. compare, search and dedup then take it with
    [bold]--thresholds[/] and say "copy" or "not a copy".

    A precision measured on n pairs has a standard error of sqrt(p(1-p)/n); the claim is refused unless
    that is at most half the error rate allowed, n ≥ 4p/(1-p): at least 76 copies, 76 other pairs and 76
    pairs above the threshold for 0.95. The precision holds for pairs like the set's: calibrate on
    material like your own.

    Example: [bold]s2vs calibrate --ground-truth gt.json --dataset-hdf5 features.hdf5 -o thresholds.json[/]
    """
    with reported_errors():
        cfg = command_config(CalibrateConfig, locals() | shared)
        json_output = shared["json_output"]
        if output is None and not json_output:
            raise ConfigError("give where to write the thresholds: --output THRESHOLDS.json (or --json to print them)")
        check_writable(output)  # before anything is imported or loaded
        from ..jobs.calibrate import check_sources, run_calibration  # late: torch, only once the command runs

        check_sources(cfg, from_similarities)  # usage errors before any model is loaded
        with running(cfg, shared["quiet"] or json_output) as (runtime, progress):
            thresholds = run_calibration(cfg, runtime, from_similarities=from_similarities, output=output,
                                         progress=progress)
    if json_output:
        print(json.dumps(thresholds.as_dict()))
        return
    _render(thresholds, output, shared["quiet"])


def _render(thresholds, output: str | None, quiet: bool) -> None:
    data = thresholds.as_dict()
    used = data["calibration_set"]
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("threshold", f"[bold]{data['threshold']:.4f}[/]  (a pair scoring this or more is a copy)")
    table.add_row("precision", f"{data['precision']:.3f}  (target {data['target_precision']:g}; "
                               f"{used['accepted']} pairs at or above the threshold)")
    table.add_row("recall", f"{data['recall']:.3f}")
    named = terminal_safe(used["name"] + (f" ({used['file']})" if used["file"] else ""))
    table.add_row("calibrated on", f"{named}: {used['pairs']:,} pairs, {used['positives']:,} copies")
    table.add_row("scores", terminal_safe(f"{thresholds.identity.describe()}; from {used['scores']}"))
    if thresholds.normalization is not None:
        table.add_row("normalized", terminal_safe(thresholds.normalization.describe()))
    left_out = data["common_frames"] == "left out"
    table.add_row("common frames", "left out (as search and dedup leave them out)" if left_out
                  else "kept (for runs with --keep-common-frames)")
    if output:
        table.add_row("written to", terminal_safe(output))
    print_table(table)
    if quiet:
        return
    if used["missing_pairs"]:
        console.print(f"[yellow]note:[/] {used['missing_pairs']:,} labelled pairs had no score (a video missing "
                      "from the features) and were left out", highlight=False)
    if thresholds.random_weights:
        console.print("[yellow]note:[/] random weights: a test of the pipeline, not a meaningful threshold")
