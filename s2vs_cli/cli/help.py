"""How every command's --help looks: options grouped in panels in one order, flags without a `<bool>` type.

Typer 0.29 shows a type for every option, `<bool>` on flags included, and prints panels in the order their
first option is declared. The command classes here (given to the app as `cls=`) keep both in one place, so
each command only says which panel an option belongs to.
"""
from __future__ import annotations

import inspect
from typing import Any

from typer._click.exceptions import NoSuchOption  # Typer 0.29 carries its own click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .options import INPUT, MODEL, OUTPUT, REMOVED_OPTIONS, RUNTIME

# Panels in the order they are shown; a command's own panels (e.g. "Search") come between Model and Output.
_PANEL_RANK = {INPUT: 0, MODEL: 1, OUTPUT: 3, RUNTIME: 4}
_OWN_PANEL_RANK = 2


def _rank(param: Any) -> int:
    if isinstance(param, TyperArgument):
        return -1  # arguments keep their places (and their order, which is their meaning)
    panel = getattr(param, "rich_help_panel", None)
    return _PANEL_RANK.get(panel, _OWN_PANEL_RANK) if panel else -1


def _without_type(params: list[Any]) -> None:
    """Flags take no value: show no type for them (an empty metavar replaces Typer's `<bool>`)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


def reflow(text: str | None) -> str | None:
    """A docstring's paragraphs each as one line, for the terminal to wrap: Typer keeps the line breaks of all
    but the first, which breaks lines mid-sentence at other widths. Paragraphs starting with \\b keep theirs."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


class Command(TyperCommand):
    """A command whose help shows its options by panel (Input, Model, Output, Runtime) and flags without a type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help, self.epilog = reflow(self.help), reflow(self.epilog)
        self.params.sort(key=_rank)  # stable: options within a panel keep the order they are declared in
        _without_type(self.params)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Click's parsing; an option of an earlier release is a usage error naming the one that replaced it
        (click would suggest the closest name, e.g. --min-match-score for --batch-size)."""
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as error:
            replacement, message = REMOVED_OPTIONS.get(error.option_name, (None, ""))
            if replacement is None or not any(replacement in getattr(p, "opts", ()) for p in self.params):
                raise
            said = f"No such option: {error.option_name}; {message}"
            raise NoSuchOption(error.option_name, message=said, ctx=ctx) from None

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        """--help, shown without a type, in the Output panel when the command uses panels."""
        option = super().get_help_option(ctx)
        if option is not None:
            _without_type([option])
            if any(getattr(p, "rich_help_panel", None) for p in self.params):
                option.rich_help_panel = OUTPUT
        return option


class Group(TyperGroup):
    """The `s2vs` group: its own options (--version, --help) shown without a type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _without_type(self.params)

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        """--help, shown without a type."""
        option = super().get_help_option(ctx)
        if option is not None:
            _without_type([option])
        return option
