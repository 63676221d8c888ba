"""The architecture the layout promises: the library below cli/ knows nothing of Typer or rich."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "s2vs_cli"


def test_library_modules_do_not_import_the_cli_stack():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts[:-1]:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.split(".")[0] in {"typer", "rich"}]
    assert offenders == []


def test_help_does_not_import_torch():
    """`s2vs --help` must be instant: torch is imported inside commands only."""
    import subprocess
    import sys

    code = "import sys, s2vs_cli.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
