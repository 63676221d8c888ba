"""`s2vs evaluate`: a benchmark's metrics (the paper's table) for a model."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..config import EvaluateConfig
from ..datasets.registry import DATASET_NAMES
from . import options
from .bulk import report_failures
from .common import (check_writable, command_config, console, print_table, reported_errors, terminal_safe,
                     write_results)
from .progress import plural, running

SHOWN = 5  # ids named in a note before "and N more"
VSC = "VSC 2022"  # the panel of the challenge's own options


@options.takes("normalize_with", "normalize_k", "normalize_beta", "features_only", "model", "backbone", "backbone_weights", "pca",
               "device", "precision", "fps", "frames_per_batch", "workers", "seed", "config", "print_config",
               "json_output", "quiet")
def evaluate(
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", metavar="NAME", help=f"{', '.join(DATASET_NAMES)}: one without an annotation file to "
                                          "download reads --ground-truth instead.  \\[default: FIVR-5K]",
        rich_help_panel=options.INPUT)] = None,
    dataset_hdf5: Annotated[Optional[str], typer.Option(
        "--dataset-hdf5", metavar="FEATURES.hdf5",
        help="Features of the benchmark's videos: from extract-features or the published files.",
        rich_help_panel=options.INPUT)] = None,
    from_similarities: Annotated[Optional[str], typer.Option(
        "--from-similarities", metavar="FILE", help="Score saved similarities (.json or .h5) instead of "
                                                    "computing them; VSC22: also the challenge's candidate "
                                                    "pairs (.csv: query_id, ref_id, score), the descriptor "
                                                    "track only.", rich_help_panel=options.INPUT)] = None,
    dataset_path: Annotated[Optional[str], typer.Option(
        "--dataset-path", metavar="DIR", help="Raw videos instead of --dataset-hdf5: their features are "
                                              "extracted first (see --save-features).",
        rich_help_panel=options.INPUT)] = None,
    pattern: Annotated[Optional[str], typer.Option(
        "--pattern", metavar="GLOB",
        help="Where an id's video is under --dataset-path, {id} standing for the id.  \\[default: {id}/video.* "
             "({id} with --loader frames); VSC22: */{id}.mp4 (*/{id})]", rich_help_panel=options.INPUT)] = None,
    loader: options.Loader = None,
    annotations: Annotated[Optional[str], typer.Option(
        "--annotations", metavar="FILE|DIR",
        help="The benchmark's annotation file, instead of downloading it. VSC22: the folder of the "
             "challenge's *query_metadata.csv and *reference_metadata.csv (default: --dataset-path's, if "
             "there).", rich_help_panel=options.INPUT)] = None,
    ground_truth: Annotated[Optional[str], typer.Option(
        "--ground-truth", metavar="GT.json|GT.csv",
        help='Custom ground truth: {"queries": \\[...], "database": \\[...], "positives": {query: \\[ids]}}. '
             "VSC22: the challenge's CSV (query_id, ref_id, query_start, query_end, ref_start, ref_end).",
        rich_help_panel=options.INPUT)] = None,
    easy_duplicates: Annotated[Optional[str], typer.Option(
        "--easy-duplicates", metavar="FILE", help="FIVR's easy-duplicates list, instead of downloading it.",
        rich_help_panel=options.INPUT)] = None,
    distractors: Annotated[Optional[bool], typer.Option(
        "--distractors", help="VCDB: add the distractor videos to the database.  \\[default: off]",
        rich_help_panel=options.INPUT)] = None,
    strict: Annotated[Optional[bool], typer.Option(
        "--strict", help="Stop when queries or database videos are missing, instead of counting them.",
        rich_help_panel=options.INPUT)] = None,
    save_similarities: Annotated[Optional[str], typer.Option(
        "--save-similarities", metavar="FILE",
        help="Save the similarities ({query: {target: score}}; .json or .h5) to re-score later; VSC22: .csv "
             "writes the predicted pairs in the challenge's layout.", rich_help_panel=options.OUTPUT)] = None,
    from_matches: Annotated[Optional[str], typer.Option(
        "--from-matches", metavar="FILE.csv",
        help="Score saved segment predictions (query_id, ref_id, query_start, query_end, ref_start, ref_end, "
             "score): both tracks, a pair scored by its best segment.", rich_help_panel=VSC)] = None,
    save_matches: Annotated[Optional[str], typer.Option(
        "--save-matches", metavar="FILE.csv",
        help="Write the predicted segments in the challenge's CSV layout.", rich_help_panel=VSC)] = None,
    pairs_per_query: Annotated[Optional[int], typer.Option(
        "--pairs-per-query", metavar="N", help="Pairs predicted and located: the best N × queries in all.  "
                                               "\\[default: 25, the official limit]", rich_help_panel=VSC)] = None,
    min_match_seconds: Annotated[Optional[float], typer.Option(
        "--min-match-seconds", metavar="SECONDS",
        help="Copied parts shorter than this on either video are not predicted (VSC22's segments, and a custom "
             "ground truth's \"segments\").  \\[default: 2]",
        rich_help_panel=VSC)] = None,
    save_features: Annotated[Optional[str], typer.Option(
        "--save-features", metavar="FILE.hdf5",
        help="With --dataset-path: keep the extracted features here (and resume into it); default: a "
             "temporary file.", rich_help_panel=options.OUTPUT)] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="RESULTS.json", help="Write every number (and what was missing) as JSON.",
        rich_help_panel=options.OUTPUT)] = None,
    report: Annotated[Optional[str], typer.Option(
        "--report", metavar="OUT.html",
        help="Write a review page to open in a browser: the metrics beside the paper's, each query's AP and its "
             "errors (positives ranked low, negatives ranked high), each pair with its heatmap and copied parts "
             "when features are at hand and its videos with --dataset-path. VSC22: per query its predicted pairs, "
             "negatives first, the copies missed and the ground truth's segments.",
        rich_help_panel=options.OUTPUT)] = None,
    **shared,
) -> None:
    """Evaluate a model on a benchmark: the paper's metrics, missing videos counted.

    Example: [bold]s2vs evaluate --dataset FIVR-5K --dataset-hdf5 fivr_5k.hdf5[/]

    VSC22 (the Video Similarity Challenge 2022): pair_uAP (descriptor track) and matching_uAP (matching
    track), as its official code computes them. Its videos: --dataset-path DIR, the challenge's folder
    (query/Q100001.mp4, reference/R100001.mp4, ...: the queries and references its metadata CSVs list, or
    without them every video found with a Q or R id), or --dataset-hdf5 with the features of both
    (queries: Q + digits, references: R + digits, unless --annotations lists them). Queries without
    copies count: what is predicted for them is false. The best 25 pairs a query on average (in all) are
    predicted and located, as the official evaluation allows; saved predictions are scored as given.
    """
    with reported_errors():
        cfg = command_config(EvaluateConfig, locals() | shared)
        # Outputs before anything is imported or loaded; usage errors before any model is loaded.
        check_writable(output, save_similarities, save_matches, report, made=(cfg.save_features,))
        from ..jobs.evaluate import check_sources, run_evaluation  # late: torch, only once the command runs
        from ..report.document import heatmap_entry  # late: numpy, only once the command runs

        check_sources(cfg, from_similarities, from_matches, save_matches)
        json_output = shared["json_output"]
        with running(cfg, shared["quiet"] or json_output) as (runtime, progress):
            evaluation = run_evaluation(cfg, runtime, from_similarities=from_similarities,
                                        save_similarities_to=save_similarities, from_matches=from_matches,
                                        save_matches_to=save_matches,
                                        heatmap=heatmap_entry if report is not None else None,  # the review's
                                        progress=progress)
            summary = evaluation.as_dict()
            write_results(output, summary)
            if report is not None:
                summary["report"] = str(_write_report(report, evaluation, cfg, runtime, progress))
    if json_output:
        print(json.dumps(summary))
        return
    _render(summary, evaluation, shared["quiet"])


def _write_report(path: str, evaluation, cfg, runtime, progress):
    """The review page of a finished evaluation, written to `path` with its images beside it; its path."""
    from ..report.evaluate_review import review_document  # late: numpy, PIL and PyAV, only with --report
    from ..report.page import write_page  # late: importlib.resources and tempfile (~8 ms), only with --report

    extractor = runtime.extractor.label if runtime.extractor is not None else None
    return write_page(review_document(evaluation, cfg, extractor=extractor, progress=progress), path)


def _render(summary: dict, report, quiet: bool) -> None:
    if report.extraction is not None and not quiet:
        report_failures(report.extraction.failures, "the missing counts below" if report.features_kept is None
                        else report.extraction.failures_file or f"{report.features_kept}.failed.tsv")
    table = Table(title=terminal_safe(summary["dataset"]), title_justify="left")
    table.add_column("metric")
    table.add_column("s2vs", justify="right")
    paper = summary.get("paper", {})
    if paper:
        table.add_column("paper", justify="right")
    for name, value in summary["metrics"].items():
        table.add_row(name, f"{value:.4f}", *([f"{paper[name]:.3f}" if name in paper else ""] if paper else []))
    # Under the table, not as its caption: a caption wraps at the table's width, breaking file names.
    print_table(Group(table, Text.from_markup(f"model: {terminal_safe(summary['model'])}")))
    missing_q, missing_d = summary["missing_queries"], summary["missing_database"]
    vsc22 = "predictions" in summary  # the challenge's database is its references
    database = "references" if vsc22 else "database videos"
    _say(f"{_queries(summary['queries'])} and {plural(summary['database'], database)} evaluated")
    if "segment_pairs" in summary:
        lost = summary["segment_pairs_missing"]
        _say(f"segments located on {plural(summary['segment_pairs'], 'annotated pairs')}"
             + (f" ({len(lost)} left out: a video is missing)" if lost else ""))
    if vsc22:
        _say(", ".join(plural(count, name.replace("_", " ")) for name, count in summary["predictions"].items()))
    if "segment_note" in summary:
        _say(f"[yellow]note:[/] {terminal_safe(summary['segment_note'])}")
    if "normalization" in summary:
        noise = summary["normalization"]
        _say(f"scores normalized with {terminal_safe(noise['noise'])} ({plural(noise['videos'], 'noise videos')}, "
             f"k {noise['k']}, β {noise['beta']:g})")
    if summary.get("without_positives"):
        left_out = summary["without_positives"]
        _say(f"[yellow]note:[/] {_queries(len(left_out))} had no positives among the videos evaluated and "
             f"{'was' if len(left_out) == 1 else 'were'} left out of mAP: {terminal_safe(_ids(left_out))}")
    if missing_q or missing_d:
        example = (missing_q or missing_d)[0]
        effect = ("their copies still count, as in the official evaluation" if vsc22
                  else "they leave the relevant sets as in the original")
        _say(f"[yellow]note:[/] missing: {_queries(len(missing_q))} and {plural(len(missing_d), database)} "
             f"(e.g. {terminal_safe(example)}); {effect} (--strict to refuse)")
    if summary["random_weights"]:
        _say("[yellow]note:[/] random weights: a test of the pipeline, not meaningful metrics")
    if "report" in summary and not quiet:
        _say(f"report: {terminal_safe(summary['report'])}")


def _say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


def _queries(count: int) -> str:
    return f"{count} {'query' if count == 1 else 'queries'}"


def _ids(ids: list[str]) -> str:
    named = ", ".join(ids[:SHOWN])
    return f"{named} and {len(ids) - SHOWN} more" if len(ids) > SHOWN else named
