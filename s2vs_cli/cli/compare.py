"""`s2vs compare A B`: how similar two videos are, and where they match."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options
from ..config import CompareConfig
from ..errors import S2VSError
from .common import check_writable, command_config, console, print_table, reported_errors, terminal_safe
from .progress import running

Heatmap = Annotated[Optional[str], typer.Option(
    "--heatmap", metavar="OUT.png", rich_help_panel=options.OUTPUT,
    help="Save the frame-to-frame similarity map as an image, time in seconds on both axes, with every copied "
         "part outlined (the best one thickest).")]
Report = Annotated[Optional[str], typer.Option(
    "--report", metavar="OUT.html", rich_help_panel=options.OUTPUT,
    help="Write a review page to open in a browser: the heatmap, every copied part on a timeline and as thumbnails, "
         "and both videos side by side, seeking together to the part chosen.")]


@options.takes("min_match_seconds", "thresholds", "min_match_score", "keep_common_frames", "features_only", "model", "backbone", "backbone_weights",
               "pca", "device", "precision", "fps", "frames_per_batch", "seed", "compile_cnn", "config",
               "print_config", "json_output", "quiet")
def compare(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="Query video (any format FFmpeg reads).",
                                         show_default=False)],
    target: Annotated[str, typer.Argument(metavar="TARGET", help="Target video.", show_default=False)],
    heatmap: Heatmap = None,
    report: Report = None,
    collection: Annotated[Optional[str], typer.Option(
        "--collection", metavar="FEATURES.h5", rich_help_panel=options.SCORES,
        help="A collection's feature file (made by the same model): frames whose near-duplicates occur in many of "
             "its videos (intros, logos) and low-information frames (black, fades) are left out of matching "
             "(see --keep-common-frames).")] = None,
    **shared,
) -> None:
    """Similarity of two videos (in [-1, 1]), the time ranges where they match best, and every copied part.

    With [bold]--thresholds[/] (from s2vs calibrate), also the verdict: copy or not a copy.
    Example: [bold]s2vs compare original.mp4 suspect.mp4 --heatmap map.png --report review.html[/]
    """
    with reported_errors():
        cfg = command_config(CompareConfig, locals() | shared)
        check_writable(report, made=(heatmap,))  # before anything is imported or loaded
        from ..jobs.compare import check_videos, compare_videos  # late: torch, only once the command runs

        check_videos(query, target)  # a bad input fails now, not after minutes of weight loading
        json_output = shared["json_output"]
        with running(cfg, shared["quiet"] or json_output) as (runtime, progress):
            result = compare_videos(query, target, cfg, runtime, progress)
            if report:
                written = _write_report(report, result, runtime, cfg.fps, progress)
        if heatmap:
            _save_heatmap(heatmap, result, query, target)

    summary = result.as_dict() | {
        "model": _model_label(runtime),
        "extractor": runtime.extractor.label,
        "random_weights": runtime.random_weights,
        "device": str(runtime.device), "precision": runtime.precision,
        "warnings": result.warnings,
    }
    if report:
        summary["report"] = str(written)
    if json_output:
        print(json.dumps(summary))
        return
    _render(summary, heatmap)


def _write_report(path: str, result, runtime, fps: float, progress):
    """The review page of `result`, written to `path` with its images beside it; its path."""
    from ..report.compare_review import compare_document  # late: numpy and PyAV, only with --report
    from ..report.page import write_page  # late: importlib.resources and tempfile (~8 ms), only with --report

    document = compare_document(result, fps, model=_model_label(runtime), extractor=runtime.extractor.label,
                                random_weights=runtime.random_weights, progress=progress)
    return write_page(document, path)


def _model_label(runtime) -> str:
    return "features only" if runtime.network is None else runtime.network.label


def _save_heatmap(path: str, result, query: str, target: str) -> None:
    from ..report.heatmap import save_heatmap  # late: numpy and PIL, only with --heatmap

    try:
        save_heatmap(path, result.frame_similarity, result.query_times, result.target_times, segment=result.segment,
                     matches=[match.times for match in result.matches],
                     title=f"{_name(query)} vs {_name(target)}: similarity {result.similarity:.3f}",
                     query_label=_name(query), target_label=_name(target))
    except OSError as e:
        raise S2VSError(f"{path}: cannot write the heatmap ({e.strerror or e})") from None


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _seconds(value: float) -> str:
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def _render(summary: dict, heatmap: str | None) -> None:
    segment = summary["segment"]
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("similarity", f"[bold]{summary['similarity']:.4f}[/]")
    if "verdict" in summary:
        relation = "≥" if summary["verdict"] == "copy" else "<"
        table.add_row("verdict", f"[bold]{summary['verdict']}[/]  (similarity {relation} threshold "
                                 f"{summary['threshold']:.4f}; precision {summary['calibrated_precision']:.3f} "
                                 "at calibration)")
    table.add_row("query", f"{terminal_safe(summary['query'])}  ({summary['frames'][0]} frames)")
    table.add_row("target", f"{terminal_safe(summary['target'])}  ({summary['frames'][1]} frames)")
    if not summary["matches"]:  # none passes --min-match-seconds or --min-match-score: say where it matches best
        table.add_row("best match", f"query {_seconds(segment['query_start'])}–{_seconds(segment['query_end'])}  "
                                    f"↔  target {_seconds(segment['target_start'])}–{_seconds(segment['target_end'])}")
    for number, match in enumerate(summary["matches"], start=1):
        table.add_row(f"match {number}" if len(summary["matches"]) > 1 else "match",
                      f"query {_seconds(match['query_start'])}–{_seconds(match['query_end'])}  ↔  "
                      f"target {_seconds(match['target_start'])}–{_seconds(match['target_end'])}  "
                      f"(score {match['score']:.3f})")
    if "left_out_frames" in summary:
        table.add_row("left out", "{query} query and {target} target frames (boilerplate or low-information)"
                      .format(**summary["left_out_frames"]))
    table.add_row("model", terminal_safe(f"{summary['model']}; {summary['extractor']}; {summary['device']} "
                                     f"{summary['precision']}"))
    if heatmap:
        table.add_row("heatmap", terminal_safe(heatmap))
    if "report" in summary:
        table.add_row("report", terminal_safe(summary["report"]))
    print_table(table)
    if summary["random_weights"]:
        console.print("[yellow]note:[/] random weights: a test of the pipeline, not a meaningful similarity")
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {terminal_safe(warning)}", highlight=False, soft_wrap=True)
