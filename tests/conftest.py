"""Shared fixtures: the ../shared data (skipped with a reason when absent) and parity weights."""
from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

# Torch's OpenMP threads spin-wait between parallel regions. When another process holds one of the two cores
# (a second test run, a CI neighbour), the spinning thread takes its partner's turns and every convolution runs
# ~2.5x slower than on one thread; waiting asleep costs nothing measurable. Set before torch loads (libgomp
# reads it once); the CLI and torchrun subprocesses of the tests inherit it. An explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
PARITY = SHARED / "parity"
VIDEOS = SHARED / "videos"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the ../shared folder (parity fixtures, clips) is not beside the checkout")
    return path


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No downloads: an empty cache of s2vs's own and torch.hub's, offline mode on (weights must be local)."""
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "s2vs-cache"))
    monkeypatch.setenv("S2VS_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return _require(PARITY)


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    return _require(VIDEOS)


@pytest.fixture(scope="session")
def parity_inputs(parity_dir):
    return dict(np.load(parity_dir / "inputs.npz"))


@pytest.fixture(scope="session")
def parity_ref(parity_dir):
    return dict(np.load(parity_dir / "ref.npz"))


@pytest.fixture(scope="session")
def parity_weights(parity_dir, tmp_path_factory) -> Path:
    """resnet_random.pth and pca_random.pth, recreated by the fixture's own script (~10 s, once per run)."""
    spec = importlib.util.spec_from_file_location("make_weights", parity_dir / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("parity_weights")
    with torch.random.fork_rng(devices=[]):
        module.make(out)
    return out


from browser_support import browser  # noqa: E402,F401 -- the headless Chromium fixture of the page tests


def _can_mount() -> bool:
    probe = Path("/tmp/s2vs-mount-probe")
    probe.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    if done.returncode == 0:
        subprocess.run(["umount", str(probe)], check=True)
    return done.returncode == 0


@pytest.fixture()
def mount_tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Real small file systems: `mount_tmpfs(folder, "64k")` mounts a tmpfs of that size there (the folder is
    made), unmounted after the test; skipped where mounting needs rights this machine lacks."""
    if not _can_mount():
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture()
def small_disk(tmp_path, mount_tmpfs):
    """A real 1 MB filesystem (tmpfs); needs root and mount rights, else skipped ."""
    return mount_tmpfs(tmp_path / "small", "1m")


def resize_tmpfs(folder: Path, size: str) -> None:
    """Give a mounted tmpfs another size (space freed, or taken), keeping its files."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
