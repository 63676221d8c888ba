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


def _imported_folders(path: Path) -> set[str]:
    """The package folders (or top modules) a module imports, late and type-checking imports included."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = module[:len(module) - node.level]
            target = (*base, *(node.module or "").split(".")) if node.module else base
        elif isinstance(node, ast.ImportFrom):
            target = tuple((node.module or "").split("."))
        else:
            continue
        if target[0] == PACKAGE.name and len(target) > 1:
            found.add(target[1])
    return found


def test_datasets_and_training_sit_below_jobs_and_report():
    """The evaluation's results live in datasets/ (jobs make them, report/ shows them) and training's evaluator
    is handed its features by jobs/train.py: neither folder reaches up."""
    offenders = [f"{path.relative_to(PACKAGE)}: {folder}" for name in ("datasets", "training")
                 for path in (PACKAGE / name).rglob("*.py") for folder in _imported_folders(path)
                 if folder in {"jobs", "report", "cli"}]
    assert offenders == []


def test_evaluation_jobs_and_their_review_pages_do_not_import_each_other():
    jobs = [PACKAGE / "jobs" / f"{name}.py" for name in ("evaluate", "evaluate_vsc", "evaluation_steps")]
    pages = [PACKAGE / "report" / f"{name}.py" for name in ("evaluate_review", "vsc_review")]
    assert [str(p.name) for p in jobs if "report" in _imported_folders(p)] == []
    assert [str(p.name) for p in pages if "jobs" in _imported_folders(p)] == []
