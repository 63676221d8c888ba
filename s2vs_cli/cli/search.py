"""`s2vs search` and `s2vs index`: where else a clip appears in an indexed collection."""
from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options
from ..config import SearchConfig
from ..errors import ConfigError
from .common import (check_writable, command_config, console, print_table, reported_errors, terminal_safe,
                     write_results)
from .progress import RichProgress, plural, running

SEARCH = "Search"  # how candidates are found: this command's own panel

Database = Annotated[Optional[str], typer.Option(
    "--database", "-d", metavar="FEATURES.h5",
    help="The collection's feature file (from s2vs extract-features)." + options.REQUIRED,
    rich_help_panel=options.INPUT)]


@options.takes("min_match_seconds", "min_match_score", "thresholds", "decisions", "normalize_with", "normalize_k",
               "normalize_beta", "keep_common_frames", "features_only", "model", "backbone", "backbone_weights", "pca",
               "device", "precision", "fps", "frames_per_batch", "seed", "config", "print_config", "json_output", "quiet")
def search(
    queries: Annotated[list[str], typer.Argument(
        metavar="QUERY", help="Video files, folders of videos, or ids of videos already in the feature file.",
        show_default=False)],
    database: Database = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", help="Results per query.  \\[default: 20]",
                                                 rich_help_panel=options.OUTPUT)] = None,
    candidates: Annotated[Optional[int], typer.Option(
        "--candidates", help="Videos the index proposes per query, scored on their frame descriptors.  "
                             "\\[default: 1000]", rich_help_panel=SEARCH)] = None,
    rerank: Annotated[Optional[int], typer.Option(
        "--rerank", help="Of the candidates, how many (the best by frame-level score) ViSiL re-ranks; at least "
                         "--top-k.  \\[default: 100]", rich_help_panel=SEARCH)] = None,
    exhaustive: Annotated[Optional[bool], typer.Option(
        "--exhaustive", help="Score every video with ViSiL instead of asking the index (slow; to check recall).",
        rich_help_panel=SEARCH)] = None,
    rebuild_index: Annotated[Optional[bool], typer.Option(
        "--rebuild-index", help="Rebuild the index from scratch instead of updating it.",
        rich_help_panel=SEARCH)] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="RESULTS.json", help="Write every result as JSON.",
        rich_help_panel=options.OUTPUT)] = None,
    report: Annotated[Optional[str], typer.Option(
        "--report", metavar="OUT.html",
        help="Write a review page to open in a browser: each query's hits, each with its heatmap, copied parts "
             "and both videos side by side (see --report-videos).", rich_help_panel=options.OUTPUT)] = None,
    report_videos: Annotated[Optional[str], typer.Option(
        "--report-videos", metavar="DIR",
        help="Where the collection's videos are, for the report's players and thumbnails: an id's video is "
             "DIR/**/{id}.* (query files are linked as given).", rich_help_panel=options.OUTPUT)] = None,
    **shared,
) -> None:
    """Rank a collection's videos against each query: the most similar first, with where they match.

    A cascade: the index beside the feature file (built or updated as needed) proposes candidates, their
    frame descriptors keep the most promising (--rerank), and ViSiL re-ranks those. Example: [bold]s2vs search clip.mp4 --database collection.h5 --top-k 10[/]
    """
    with reported_errors():
        cfg = command_config(SearchConfig, locals() | shared)
        check_writable(output, report)  # before anything is imported or loaded
        from ..jobs.search import start_search  # late: torch, only once the command runs
        from ..report.document import heatmap_entry  # late: numpy, only once the command runs

        finder = _video_finder(report, report_videos)
        json_output = shared["json_output"]
        quiet = shared["quiet"] or json_output
        with running(cfg, quiet) as (runtime, progress):
            run = start_search(queries, cfg, runtime, progress,
                               heatmap=heatmap_entry if report is not None else None)  # the review's heatmaps
        with run:
            if not quiet and run.index_update is not None and run.index_update["action"] != "fresh":
                _say_update(run.index_update)
            for result in run:
                if not quiet:
                    _render(result)
        summary = run.summary()
        write_results(output, summary)
        if report is not None:
            with RichProgress(console, quiet) as progress:
                written = _write_report(report, run, finder, runtime, progress)
            summary["report"] = str(written)
    if json_output:
        print(json.dumps(summary))
    elif "calibration" in summary and not quiet:
        calibration = summary["calibration"]
        console.print(f"verdict: copy when the {'normalized ' if 'normalization' in summary else ''}similarity "
                      f"≥ {calibration['threshold']:.4f} (precision {calibration['precision']:.3f} at calibration; "
                      f"{terminal_safe(calibration['file'] or 'thresholds')})", highlight=False, soft_wrap=True)
    if "report" in summary and not quiet:
        console.print(f"report: {terminal_safe(summary['report'])}", highlight=False, soft_wrap=True)
    if not json_output and summary["random_weights"]:
        console.print("[yellow]note:[/] random weights: a test of the pipeline, not a meaningful similarity")
    failed = [r for r in run.results if r.error is not None]
    if failed and not quiet:
        console.print(f"[red]{len(failed)} of {len(run.results)} {'query' if len(run.results) == 1 else 'queries'} "
                      "failed[/]", highlight=False)
    if failed:
        raise typer.Exit(3)


def _video_finder(report: str | None, videos: str | None):
    """The finder of the collection's videos (None without --report-videos), checked before any work."""
    from ..report.video_lookup import VideoFinder  # late: numpy, PIL and PyAV, only once the command runs

    if videos is None:
        return None
    if report is None:
        raise ConfigError("--report-videos goes with --report OUT.html")
    return VideoFinder(videos)


def _write_report(path: str, run, finder, runtime, progress):
    """The review page of a finished search, written to `path` with its images beside it; its path."""
    from ..report.page import write_page  # late: importlib.resources and tempfile (~8 ms), only with --report
    from ..report.search_review import search_document  # late: numpy, PIL and PyAV, only with --report

    extractor = runtime.extractor.label if runtime.extractor is not None else None
    document = search_document(run.results, run.summary(), run.query_videos, finder, extractor=extractor,
                               progress=progress)
    return write_page(document, path)


def index(
    database: Annotated[str, typer.Argument(metavar="FEATURES.h5", help="The collection's feature file.",
                                            show_default=False)],
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build from scratch even if the index is current.",
                                          rich_help_panel=options.OUTPUT)] = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Build or update the search index beside a feature file (search does this by itself when needed).

    New videos are added; a video that changed or left the file, or a damaged index, makes it rebuild. When
    the file's folder is not writable, the index is kept in the user's cache instead.
    """
    with reported_errors():
        from ..jobs.search import index_summary  # late: torch, only once the command runs
        from ..storage.index import open_index  # late: h5py and numpy, only once the command runs

        started = time.perf_counter()
        with RichProgress(console, quiet or json_output) as progress:
            summary = index_summary(*open_index(database, rebuild, progress))
        summary["seconds"] = round(time.perf_counter() - started, 2)
    if json_output:
        print(json.dumps(summary))
    elif not quiet:
        _say_update(summary)


def _say_update(summary: dict) -> None:
    what = {"built": "built", "rebuilt": "rebuilt", "added": f"updated: {plural(summary['added'], 'new videos')} added",
            "fresh": "up to date"}[summary["action"]]
    why = f" ({summary['reason']})" if summary.get("reason") else ""
    console.print(f"index {what}{terminal_safe(why)}: {plural(summary['videos'], 'videos')}, "
                  f"{plural(summary['entries'], 'segments')}, "
                  f"{summary['kind']}; {terminal_safe(summary['index'])}", highlight=False, soft_wrap=True)
    if summary.get("note"):
        console.print(terminal_safe(summary["note"]), highlight=False, soft_wrap=True)


def _render(result) -> None:
    if result.error is not None:
        named = result.error if result.error.startswith(result.query) else f"{result.query}: {result.error}"
        console.print(f"[red]failed:[/] {terminal_safe(named)}", highlight=False, soft_wrap=True)
        return
    caption = f"{plural(result.candidates, 'videos')} re-ranked in {result.seconds:.2f} s"
    if result.stages.get("frame_level"):
        caption = (f"{plural(result.stages['index'], 'candidates')}, the best {result.candidates:,} by frame "
                   f"re-ranked in {result.seconds:.2f} s")
    normalized = result.offset is not None
    if normalized:  # one score column, to fit 80 columns: the raw similarity is this plus the offset
        caption += f"; normalized: the similarity less {result.offset:.4f}, the query's noise offset"
    table = Table(title=terminal_safe(result.query), title_justify="left", caption=caption, caption_justify="left")
    verdicts = any(hit.verdict is not None for hit in result.hits)
    for name, justify, shown in (("#", "right", True), ("video", "left", True),
                                 ("normalized" if normalized else "similarity", "right", True),
                                 ("verdict", "left", verdicts), ("query", "right", True), ("video at", "right", True)):
        if shown:
            table.add_column(name, justify=justify)
    for rank, hit in enumerate(result.hits, 1):
        s = hit.segment
        cells = [str(rank), terminal_safe(hit.video_id), f"{hit.normalized if normalized else hit.similarity:.4f}"]
        cells += [hit.verdict] if verdicts else []
        table.add_row(*cells, _span(s.query_start, s.query_end) if s else "",
                      _span(s.target_start, s.target_end) if s else "")
    print_table(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {terminal_safe(warning)}", highlight=False, soft_wrap=True)


def _span(start: float, end: float) -> str:
    return f"{_clock(start)}–{_clock(end)}"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"
