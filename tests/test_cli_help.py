"""Every command's --help at 80 columns: whole option names, no `<bool>`, options in panels, required marked."""
from __future__ import annotations

import re

import pytest
import typer
from typer.core import TyperArgument, TyperOption
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.cli.options import INPUT, MODEL, OUTPUT, RUNTIME

runner = CliRunner()
GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)
# Options that are required but may come from --config instead, so Typer cannot mark them: their help says so.
REQUIRED_THROUGH_CONFIG = {"search": ["--database"]}


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": None})
    assert result.exit_code == 0, result.output
    return result.stdout


def _whole(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _names(param) -> list[str]:
    return [*param.opts, *getattr(param, "secondary_opts", [])]


def test_the_group_help_names_every_command_whole():
    text = _help()
    assert "…" not in text and "<bool>" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for name in COMMANDS:
        assert _whole(name, text), name
    assert _whole("--version", text) and _whole("--help", text)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_at_80_columns(name):
    command = GROUP.commands[name]
    text = _help(name)
    lines = text.splitlines()
    problems = []
    if "…" in text:
        problems.append("truncated: " + "; ".join(line.strip() for line in lines if "…" in line))
    if "<bool>" in text:
        problems.append("<bool> shown: " + "; ".join(line.strip() for line in lines if "<bool>" in line))
    if any(len(line) > 80 for line in lines):
        problems.append("wider than 80 columns")
    options = [p for p in command.params if isinstance(p, TyperOption) and not p.hidden]
    for param in options:
        problems += [f"{option} not shown whole" for option in _names(param) if not _whole(option, text)]
    # Options are grouped: every one in a panel (the shared Input/Model/Output/Runtime, or the command's own).
    panels = {getattr(p, "rich_help_panel", None) for p in options}
    if None in panels:
        loose = [p.opts[0] for p in options if getattr(p, "rich_help_panel", None) is None]
        problems.append(f"options in no panel: {', '.join(loose)}")
    for panel in panels - {None}:
        if f"─ {panel} ─" not in text:
            problems.append(f"panel {panel!r} not shown")
    # Required parameters carry Typer's mark (*); those that may come from --config say [required].
    required = [p for p in command.params if p.required]
    marked = [line for line in lines if re.match(r"│ \*\s", line)]
    if len(marked) != len(required):
        problems.append(f"{len(required)} required parameters, {len(marked)} marked")
    for option in REQUIRED_THROUGH_CONFIG.get(name, []):
        at = next((i for i, line in enumerate(lines) if line.startswith("│") and _whole(option, line)), None)
        if at is None or "[required]" not in " ".join(lines[at:at + 3]):
            problems.append(f"{option} is not marked [required]")
    assert not problems, f"s2vs {name} --help: " + " | ".join(problems)


def test_shared_panels_come_in_one_order():
    text = _help("compare")
    shown = [text.index(f"─ {panel} ─") for panel in (INPUT, MODEL, OUTPUT, RUNTIME)]
    assert shown == sorted(shown)


def test_arguments_are_listed_and_flags_show_no_type():
    text = _help("search")
    assert "QUERY" in text and "--exhaustive" in text
    line = next(line for line in text.splitlines() if "--exhaustive" in line)
    assert re.search(r"--exhaustive\s+Score every video", line), line
    assert not any(isinstance(p, TyperArgument) and p.rich_help_panel for p in GROUP.commands["search"].params)
