"""What the bulk commands share in the terminal: the summary, the failures and the exit status."""
from __future__ import annotations

from typing import Any


from ..atomic import check_writable
from ..errors import ConfigError
from .common import console, stdout, terminal_safe
from .progress import plural

EXIT_SOME_FAILED = 3
RESUME_HINT = "finished videos are kept: run the same command again to go on"
SHOWN_FAILURES = 10


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A two-column summary on stdout (bold labels), lines without trailing spaces when piped."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        stdout.print(f"  [bold]{label:<{width}}[/]    {value}", highlight=False, soft_wrap=True)


def nothing_to_do(summary: Any, output: str) -> bool:
    """Say so when a re-run found every video already done (instead of an empty bar); True if it did."""
    if summary.written or summary.failures or not summary.requested or summary.already_done < summary.requested:
        return False
    videos = "the video is" if summary.requested == 1 else f"all {summary.requested} videos are"
    console.print(f"nothing to do: {videos} already in {terminal_safe(output)}", highlight=False, soft_wrap=True)
    return True


def report_failures(failures: list, listing: str) -> None:
    """The first few failures on stderr, and where the full list is."""
    if not failures:
        return
    for failure in failures[:SHOWN_FAILURES]:
        console.print(f"[red]failed:[/] {terminal_safe(failure.video_id)}: {terminal_safe(failure.reason)}",
                      highlight=False, soft_wrap=True)
    more = f" ({len(failures) - SHOWN_FAILURES} more)" if len(failures) > SHOWN_FAILURES else ""
    console.print(f"{plural(len(failures), 'videos')} failed{more}; all are listed in {terminal_safe(listing)}",
                  highlight=False, soft_wrap=True)


def check_output(output: str, folder: bool = False) -> None:
    """Refuse an empty or unwritable output path (a file, or a `folder`; missing folders are made) before
    anything is loaded."""
    if not output.strip():
        raise ConfigError("--output must name a file or folder")
    check_writable(output, folder=folder, parents=True)


def exit_status(failures: list, is_main: bool) -> int:
    """3 when videos failed (rank 0 only: under torchrun the other ranks exit 0 so it reports one status)."""
    return EXIT_SOME_FAILED if failures and is_main else 0
