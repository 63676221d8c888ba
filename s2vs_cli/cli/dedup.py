"""`s2vs dedup`: every pair of a collection's videos that shares copied content, in groups of duplicates."""
from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..config import DedupConfig
from ..distributed import place_from_env
from ..errors import ConfigError
from . import options
from .common import check_writable, command_config, console, print_table, reported_errors, terminal_safe, write_results
from .progress import plural, running

DEDUP = "Dedup"  # how pairs are found and judged: this command's own panel
SHOWN_GROUPS = 50  # groups in the summary table; the rest are in --output and --csv
PROBES = ("Self-join of a large collection (over 65,536 segments): inverted lists searched a segment. More finds more "
          "weak copies, slower (a whole run on 100,000 videos: 16 lists 7.2 min, 64 lists 15.4 min; BENCHMARKS.md).  "
          "\\[default: 16]")


@options.takes("min_match_seconds", "min_match_score", "thresholds", "decisions", "keep_common_frames", "features_only",
               "model", "backbone", "backbone_weights", "pca", "device", "precision", "fps", "seed", "config",
               "print_config", "json_output", "quiet")
def dedup(
    stores: Annotated[list[str], typer.Argument(
        metavar="FEATURES.h5", help="The collection's feature file(s), from s2vs extract-features; several are "
                                    "read as one collection (an id may be in one of them only).", show_default=False)],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="DUPLICATES.json", help="Write groups, pairs and settings as JSON.",
        rich_help_panel=options.OUTPUT)] = None,
    csv: Annotated[Optional[str], typer.Option(
        "--csv", metavar="DIR", help="Write pairs.csv and groups.csv into this folder (made when missing).",
        rich_help_panel=options.OUTPUT)] = None,
    report: Annotated[Optional[str], typer.Option(
        "--report", metavar="OUT.html",
        help="Also write a review page: each group's members (thumbnail, facts, the keeper marked) and every "
             "pair's two videos side by side at its copied parts.", rich_help_panel=options.OUTPUT)] = None,
    print_removable: Annotated[bool, typer.Option(
        "--print-removable", help="Print on stdout the source paths of every group's members but its keeper, one "
                                  "a line, and nothing else; nothing is ever deleted or moved.",
        rich_help_panel=options.OUTPUT)] = False,
    null: Annotated[bool, typer.Option(
        "-0", "--null", help="With --print-removable: end each path with NUL instead of a newline (xargs -0).",
        rich_help_panel=options.OUTPUT)] = False,
    keep: Annotated[Optional[str], typer.Option(
        "--keep", metavar="RULE", help="Suggested keeper of each group: resolution (the most pixels, then the "
                                       "longest), duration, size (the largest file) or first (in the files' "
                                       "order); ties go to the higher bitrate.  \\[default: resolution]",
        rich_help_panel=DEDUP)] = None,
    duplicate_coverage: Annotated[Optional[float], typer.Option(
        "--duplicate-coverage", metavar="SHARE", help="Copied parts covering this share of both videos make a "
                                                      "duplicate; of one only, it contains the other.  "
                                                      "\\[default: 0.8]", rich_help_panel=DEDUP)] = None,
    exhaustive: Annotated[Optional[bool], typer.Option(
        "--exhaustive", help="Score every pair of videos instead of the index's self-join (small collections; to "
                             "check recall).", rich_help_panel=DEDUP)] = None,
    neighbours: Annotated[Optional[int], typer.Option(
        "--neighbours", metavar="N", help="Self-join: nearest segments each segment looks up.  \\[default: 100]",
        rich_help_panel=DEDUP)] = None,
    probes: Annotated[Optional[int], typer.Option("--probes", metavar="N", help=PROBES, rich_help_panel=DEDUP)] = None,
    min_frame_level: Annotated[Optional[float], typer.Option(
        "--min-frame-level", metavar="SCORE", help="Self-join: candidate pairs scoring below this on their frame "
                                                   "descriptors are dropped.  \\[default: the self-join's]",
        rich_help_panel=DEDUP)] = None,
    previous: Annotated[Optional[str], typer.Option(
        "--previous", metavar="DUPLICATES.json",
        help="This store's earlier result: only the pairs of videos added since are looked for and scored, the "
             "rest reused (refused when made with other settings, or when a video of it is gone or changed).",
        rich_help_panel=DEDUP)] = None,
    **shared,
) -> None:
    """Find every pair of videos in a collection that shares copied content, and group the duplicates.

    Each pair is scored both ways (the similarity is their mean) and its copied parts located as compare locates
    them; their share of each video makes the pair a duplicate (both covered), contains (one) or overlap. Duplicates
    form groups with a suggested keeper; nothing is deleted. Example: [bold]s2vs dedup collection.h5 -o duplicates.json --print-removable -0 | xargs -0 mv -t trash/[/]
    """
    with reported_errors():
        cfg = command_config(DedupConfig, locals() | shared)
        json_output = shared["json_output"]
        if print_removable and json_output:
            raise ConfigError("--print-removable and --json both write stdout: choose one")
        if null and not print_removable:
            raise ConfigError("-0 goes with --print-removable")
        check_writable(output, report, folders=(csv,))  # before anything is imported or loaded
        from ..jobs.dedup import run_dedup  # late: torch, only once the command runs
        from ..jobs.dedup_tables import write_dedup_tables  # late: as above

        main = place_from_env().is_main  # under torchrun the ranks share the work and rank 0 writes and speaks
        quiet = shared["quiet"] or json_output or not main
        with running(cfg, quiet, distributed=True) as (runtime, progress):
            result = run_dedup(stores, cfg, runtime, progress)
            if not main:
                return
            summary = result.as_dict()
            write_results(output, summary)
            if csv is not None:
                write_dedup_tables(result, csv)
            if report is not None:  # last: the results are written even if a thumbnail cannot be made
                from ..report.dedup_review import write_dedup_report  # late: the page's modules, only with --report

                write_dedup_report(report, summary, stores, progress=progress)
    if json_output:
        print(json.dumps(summary))
    elif not quiet:
        _render(result, to_stdout=not print_removable)
    if print_removable:
        paths, unknown = result.removable()
        sys.stdout.write("".join(path + ("\0" if null else "\n") for path in paths))
        sys.stdout.flush()
        if unknown:
            console.print(f"[yellow]note:[/] {plural(len(unknown), 'removable videos')} not printed: their source file "
                          f"is unknown or gone, e.g. {terminal_safe(unknown[0])}", highlight=False, soft_wrap=True)
    missing = result.stages.get("decisions", {}).get("not_in_collection")
    if missing and not json_output:  # kept in the file, never dropped: a later collection may hold them again
        console.print(f"[yellow]note:[/] {plural(missing, 'decisions')} about videos not in this collection: kept in "
                      f"{terminal_safe(cfg.decisions)}, not applied", highlight=False, soft_wrap=True)
    if not json_output and result.random_weights:
        console.print("[yellow]note:[/] random weights: a test of the pipeline, not a meaningful similarity")


def _render(result, to_stdout: bool) -> None:
    """The groups (keeper, other members, links) and the pairs counted by relation."""
    duplicated = [(number, group) for number, group in enumerate(result.groups) if len(group.members) > 1]
    table = Table(title="duplicate groups", title_justify="left", caption_justify="left")
    for name, justify in (("#", "right"), ("keep", "left"), ("duplicates", "left"), ("linked to", "left")):
        table.add_column(name, justify=justify)
    for number, group in duplicated[:SHOWN_GROUPS]:
        table.add_row(str(number), terminal_safe(group.keep), terminal_safe(", ".join(group.removable)),
                      ", ".join(f"#{link}" for link in group.links))
    if len(duplicated) > SHOWN_GROUPS:
        table.caption = f"{len(duplicated) - SHOWN_GROUPS} more groups in --output / --csv"
    counts = result.relation_counts()
    stages = result.stages
    lines = [f"{plural(len(result.pairs), 'pairs')}: {counts['duplicate']} duplicate, {counts['contains']} contains, "
             f"{counts['overlap']} overlap ({plural(stages['candidates'], 'candidate pairs')} scored both ways, "
             f"{stages['no_match']} without a copied part); {plural(len(duplicated), 'groups')} of duplicates, "
             f"{sum(len(group.removable) for _, group in duplicated)} removable; {stages['seconds']['total']:.1f} s"]
    from_features = sum(facts.get("from") == "features" for group in result.groups for facts in group.facts.values())
    if "increment" in stages:
        increment = stages["increment"]
        lines.append(f"{plural(increment['reused'], 'pairs')} reused from {terminal_safe(increment['previous'])}; "
                     f"{plural(increment['new'], 'new videos')}; " + (
                         "every video's pairs looked for (the self-join's lists changed)" if increment.get("rejoined")
                         else f"the pairs of {plural(increment['touched'], 'videos')} looked for"))
    if from_features:
        lines.append(f"[yellow]note:[/] facts of {plural(from_features, 'videos')} from their stored features "
                     "(source file not found): the duration only")
    if duplicated:
        (print_table if to_stdout else console.print)(table)
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
