"""`s2vs search` and `s2vs index`: where else a clip appears in an indexed collection."""
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

Database = Annotated[Optional[str], typer.Option(
    "--database", "-d", metavar="FEATURES.h5", help="The collection's feature file (from s2vs extract-features).")]


def search(
    queries: Annotated[list[str], typer.Argument(
        metavar="QUERY...", help="Video files, folders of videos, or ids of videos already in the feature file.",
        show_default=False)],
    database: Database = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", help="Results per query.  \\[default: 20]")] = None,
    candidates: Annotated[Optional[int], typer.Option(
        "--candidates", help="Videos the index proposes for ViSiL re-ranking, per query.  \\[default: 1000]")] = None,
    exhaustive: Annotated[Optional[bool], typer.Option(
        "--exhaustive", help="Score every video with ViSiL instead of asking the index (slow; to check recall).")] = None,
    rebuild_index: Annotated[Optional[bool], typer.Option(
        "--rebuild-index", help="Rebuild the index from scratch instead of updating it.")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="RESULTS.json", help="Write every result as JSON.")] = None,
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
    """Rank a collection's videos against each query: the most similar first, with where they match.

    Two stages: the index beside the feature file (built or updated as needed) proposes candidates, and
    ViSiL re-ranks them. Example: [bold]s2vs search clip.mp4 --database collection.h5 --top-k 10[/]
    """
    with reported_errors():
        from ..config import SearchConfig

        cfg = load_config(SearchConfig, config, print_config, database=database, top_k=top_k, candidates=candidates,
                          exhaustive=exhaustive, rebuild_index=rebuild_index, features_only=features_only,
                          model=model, backbone_weights=backbone_weights, pca=pca, device=device,
                          precision=precision, fps=fps, batch_size=batch_size, seed=seed)
        from ..errors import ConfigError
        from ..models.loading import load_extractor, load_similarity_network
        from ..scoring.retrieval import VideoScorer
        from ..runtime import resolve_device, resolve_precision
        from ..jobs.search import Searcher, extractor_mismatch, resolve_queries
        from ..storage.store import FeatureStore

        if cfg.database is None:
            raise ConfigError("give the collection's feature file: --database FEATURES.h5")
        if Path(cfg.database).is_dir():
            raise ConfigError(f"{cfg.database}: is a folder; give the collection's feature file (FEATURES.h5)")
        if not Path(cfg.database).is_file():
            raise ConfigError(f"{cfg.database}: feature file not found")
        check_writable(output)
        quiet = quiet or json_output
        with FeatureStore(cfg.database) as store:
            stored, identity = set(store.ids()), store.identity
        sources = resolve_queries(queries, stored)
        index = None
        if not cfg.exhaustive:
            index, update = _open_index(cfg.database, cfg.rebuild_index, quiet)
            if not quiet and update["action"] != "fresh":
                _say_update(update)
        run_device = resolve_device(cfg.device)
        run_precision = resolve_precision(cfg.precision, run_device)
        with download_progress(quiet) as progress:
            network = None if cfg.features_only else load_similarity_network(cfg.model, run_device, cfg.seed, progress)
            extractor = None
            if any(source.path is not None for source in sources):
                extractor = load_extractor(cfg.backbone_weights, cfg.pca, run_device, cfg.seed, progress)
                mismatch = extractor_mismatch(identity, extractor, cfg.fps)
                if mismatch:
                    raise ConfigError(f"{cfg.database} was made with other settings than the query videos would be: "
                                      f"{mismatch}; pass the options it was extracted with")
        results = []
        with Searcher(cfg.database, VideoScorer(network, run_device, run_precision), index, cfg.candidates,
                      cfg.top_k) as searcher:
            for result in searcher.run(sources, extractor, cfg.fps, run_precision, cfg.batch_size):
                results.append(result)
                if not quiet:
                    _render(result)
        summary = {"database": cfg.database, "mode": "exhaustive" if index is None else f"index ({index.kind})",
                   "model": "features only" if network is None else network.label,
                   "results": [r.as_dict() for r in results]}
        write_results(output, summary)
    if json_output:
        print(json.dumps(summary))
    failed = [r for r in results if r.error is not None]
    if failed and not quiet:
        console.print(f"[red]{len(failed)} of {len(results)} queries failed[/]", highlight=False)
    if failed:
        raise typer.Exit(3)


def index(
    database: Annotated[str, typer.Argument(metavar="FEATURES.h5", help="The collection's feature file.",
                                            show_default=False)],
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build from scratch even if the index is current.")] = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Build or update the search index beside a feature file (search does this by itself when needed).

    New videos are added; a video that changed or left the file, or a damaged index, makes it rebuild. When
    the file's folder is not writable, the index is kept in the user's cache instead.
    """
    with reported_errors():
        import time

        started = time.perf_counter()
        _, summary = _open_index(database, rebuild, quiet or json_output)
        summary["seconds"] = round(time.perf_counter() - started, 2)
    if json_output:
        print(json.dumps(summary))
    elif not quiet:
        _say_update(summary)


def _open_index(database: str, rebuild: bool, quiet: bool) -> tuple:
    """(index, update summary): the index brought up to date, with a progress bar while it works."""
    from ..storage.index import open_index

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=console, transient=True, disable=quiet)
    tasks: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if not tasks:  # shown only once there is work: a current index or an error prints nothing
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    try:
        built, update = open_index(database, rebuild, progress)
    finally:
        if tasks:
            bar.stop()
    summary = {"index": update.folder, "action": update.action, "videos": len(built),
               "entries": int(len(built.entries)), "kind": built.kind, "added": update.added, "reason": update.reason,
               "note": update.note}
    return built, summary


def _say_update(summary: dict) -> None:
    what = {"built": "built", "rebuilt": "rebuilt", "added": f"updated: {summary['added']} new videos added",
            "fresh": "up to date"}[summary["action"]]
    why = f" ({summary['reason']})" if summary.get("reason") else ""
    console.print(f"index {what}{escape(why)}: {summary['videos']} videos, {summary['entries']} segments, "
                  f"{summary['kind']}; {escape(summary['index'])}", highlight=False, soft_wrap=True)
    if summary.get("note"):
        console.print(escape(summary["note"]), highlight=False, soft_wrap=True)


def _render(result) -> None:
    if result.error is not None:
        named = result.error if result.error.startswith(result.query) else f"{result.query}: {result.error}"
        console.print(f"[red]failed:[/] {escape(named)}", highlight=False, soft_wrap=True)
        return
    table = Table(title=result.query, title_justify="left", caption=f"{result.candidates} videos re-ranked in "
                  f"{result.seconds:.2f} s", caption_justify="left")
    for name, justify in (("#", "right"), ("video", "left"), ("similarity", "right"), ("query", "right"),
                          ("video at", "right")):
        table.add_column(name, justify=justify)
    for rank, hit in enumerate(result.hits, 1):
        s = hit.segment
        table.add_row(str(rank), escape(hit.video_id), f"{hit.similarity:.4f}",
                      _span(s.query_start, s.query_end) if s else "", _span(s.target_start, s.target_end) if s else "")
    stdout.print(table)


def _span(start: float, end: float) -> str:
    return f"{_clock(start)}–{_clock(end)}"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"
