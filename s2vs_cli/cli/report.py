"""`s2vs report RESULTS.json -o OUT.html`: a review page of results saved earlier with --json or --output."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options
from ..errors import ConfigError
from .common import check_writable, console, reported_errors, stdout, terminal_safe
from .progress import RichProgress, plural


def report(
    results: Annotated[str, typer.Argument(
        metavar="RESULTS.json", help="What s2vs compare --json, search --json/--output, evaluate --json/--output "
                                     "or dedup -o saved.", show_default=False)],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="OUT.html",
        help="The page to write (its images go to a folder beside it)." + options.REQUIRED,
        rich_help_panel=options.OUTPUT)] = None,
    videos: Annotated[Optional[str], typer.Option(
        "--videos", metavar="DIR", help="Folder holding the videos of the ids in the results (searched at any depth), "
                                        "to link them and make thumbnails.", rich_help_panel=options.INPUT)] = None,
    pattern: Annotated[Optional[str], typer.Option(
        "--pattern", metavar="GLOB", help="How an id's video is named under --videos, {id} standing for the id.  "
                                          "\\[default: {id}.*]", rich_help_panel=options.INPUT)] = None,
    quiet: options.Quiet = False,
) -> None:
    """Write a review page (open it in a browser) of results saved earlier: each pair's scores, copied parts,
    thumbnails and both videos side by side. The frame maps are not saved, so the page has no heatmaps.

    Example: [bold]s2vs report results.json -o review.html --videos clips/[/]
    """
    with reported_errors():
        if output is None:
            raise ConfigError("give the page to write: --output OUT.html")
        check_writable(output)
        from ..report.document import document_counts  # late: numpy, only once the command runs
        from ..report.page import write_page  # late: importlib.resources and tempfile, only once the command runs
        from ..report.saved_results import saved_results_document  # late: numpy, PIL and PyAV, likewise

        with RichProgress(console, quiet) as progress:
            document = saved_results_document(results, videos, pattern, progress)
            written = write_page(document, output)
    counts = document_counts(document)
    first = plural(document["counts"]["groups"], "groups") if document["kind"] == "dedup" else \
        plural(counts["queries"], "queries")
    stdout.print(f"{terminal_safe(written)}: {first}, "
                 f"{plural(counts['pairs'], 'pairs')}, {plural(counts['matches'], 'copied parts')}, "
                 f"{plural(counts['images'], 'images')}", highlight=False, soft_wrap=True)
