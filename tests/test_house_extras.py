"""Only what a user needs is installed: AugLy (training's overlay fonts and emoji) is the `train` extra."""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from s2vs_cli.training import overlay_assets as assets_module
from s2vs_cli.training.overlay_assets import AUGLY_REQUIREMENT, OverlayAssetsError, overlay_assets

ROOT = Path(__file__).resolve().parents[1]


def test_augly_is_the_train_extra_not_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.split("=")[0].strip().lower() == "augly" for d in project["dependencies"])
    assert project["optional-dependencies"]["train"] == [AUGLY_REQUIREMENT]


def test_make_install_still_installs_the_train_extra():
    """`make install` (and so `.ci/run`) installs the extras the tests need: dev and train."""
    installs = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line and " -e " in line]
    assert len(installs) == 1 and "'.[dev,train]'" in installs[0], installs


def test_without_augly_the_overlays_say_in_one_line_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "augly", None)  # as if not installed: find_spec answers None
    overlay_assets.cache_clear()
    try:
        with pytest.raises(OverlayAssetsError) as raised:
            overlay_assets()
    finally:
        overlay_assets.cache_clear()  # the real assets, for the tests that follow
    message = str(raised.value)
    assert "\n" not in message
    assert "pip install 's2vs[train]'" in message and AUGLY_REQUIREMENT in message


def test_the_lookup_never_imports_augly(monkeypatch):
    """Its data files are located, its code never runs: finding them leaves no augly module behind."""
    monkeypatch.delitem(sys.modules, "augly", raising=False)
    try:
        assets_module.augly_assets_dir()
    except OverlayAssetsError:
        pytest.skip("augly is not installed here (pip install 's2vs[train]')")
    assert "augly" not in sys.modules
