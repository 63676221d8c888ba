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


def test_modules_stay_readable():
    """One concept per module: none much over 400 lines (the layout's promise to a newcomer)."""
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 440}
    assert long == {}


def test_only_the_runtime_decides_devices_and_loads_models():
    """Commands and jobs take one Runtime: device, precision, process group and model loading are decided there."""
    decided_in = {"runtime.py", "distributed.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE)
        if str(where) in decided_in or where.parts[0] == "models":
            continue
        code = ast.unparse(ast.parse(path.read_text()))  # code only: docstrings may show the API
        calls = {node.func.id for node in ast.walk(ast.parse(code))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}  # runtime.load_x() is fine
        offenders += [f"{where}: {name}" for name in ("resolve_device", "resolve_precision", "load_extractor",
                                                      "load_similarity_network", "load_models", "join_process_group")
                      if name in calls]
    assert offenders == []


def test_models_and_scoring_stand_on_compute_not_on_the_runtime():
    """Device, precision and autocast are the bottom floor (compute.py): what runs models never imports the
    runtime that holds them (late imports count), so models/loading and runtime form no cycle."""
    offenders = []
    for path in [PACKAGE / "compute.py", *(PACKAGE / "models").rglob("*.py"), *(PACKAGE / "scoring").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
                names = [module] + [f"{module}.{a.name}" for a in node.names]
                if any(name.split(".")[-1] == "runtime" for name in names):
                    offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_help_of_the_package_lists_every_public_name_once_with_one_line():
    import importlib

    import s2vs_cli

    listed = [line.split()[0] for line in s2vs_cli.__doc__.splitlines() if line.startswith("    ") and
              line.split() and line.split()[0] in s2vs_cli._EXPORTS]
    assert sorted(listed) == sorted(s2vs_cli._EXPORTS)
    for name, module in s2vs_cli._EXPORTS.items():
        value = getattr(importlib.import_module(f"s2vs_cli.{module}"), name)
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"
