"""Tests of the artifacts table, downloads (cache, download: local HTTP server only), models.checkpoints
(safe loading, saving) and models.seeding."""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from s2vs_cli import artifacts
from s2vs_cli.artifacts import ARTIFACTS, BACKBONE, NETWORK, WHITENING, Artifact, artifacts_of
from s2vs_cli.errors import CheckpointError, WeightsError
from s2vs_cli import downloads
from s2vs_cli.models.checkpoints import check_state_dict, extract_state_dict, load_torch_file, save_checkpoint
from s2vs_cli.downloads import cache_dir, download, resolve_artifact, resolve_file_or_artifact
from s2vs_cli.models.seeding import seeded
from s2vs_cli.progress import CallbackProgress

PAYLOAD = bytes(range(256)) * 40  # 10 240 bytes: several chunks once _CHUNK is made small
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Custom:
    """A class weights_only refuses to unpickle."""


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and hub folders and a clean environment."""
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("S2VS_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(downloads, "_DIGESTS", {})


class _Server:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob.bin").write_bytes(PAYLOAD)
    s = _Server(root)
    yield s
    s.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake_artifact(monkeypatch, url: str, **kw) -> Artifact:
    art = Artifact(name="fake", url=url, filename=kw.pop("filename", "fake.pth"), **kw)
    monkeypatch.setitem(ARTIFACTS, "fake", art)
    return art


def _no_part_files(folder: Path) -> bool:
    return not list(folder.glob("*.part*")) and not list(folder.glob(".*.s2vs-tmp"))  # atomic.py's temporaries


# ---------------------------------------------------------------------------------------------
# Registry and cache


def test_registry_and_models():
    assert artifacts.available_models() == ["s2vs_dns", "s2vs_vcdb"]
    weights = {**artifacts_of(BACKBONE), **artifacts_of(WHITENING), **artifacts_of(NETWORK)}
    assert set(weights) == {"resnet50_imagenet", "pca_vcdb", "s2vs_dns", "s2vs_vcdb"}
    for name, art in weights.items():
        assert art.name == name and art.url.endswith("/" + art.filename)
        assert art.sha256 is None  # not published; never invented
    assert ARTIFACTS["resnet50_imagenet"].sha256_prefix == "0676ba61"


def test_cache_dir_honours_s2vs_home(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("S2VS_HOME")
    assert cache_dir() == Path.home() / ".cache" / "s2vs"


def test_cache_hit_beats_download(tmp_path, monkeypatch):
    _fake_artifact(monkeypatch, f"http://127.0.0.1:{_closed_port()}/fake.pth", sha256=None)
    cached = tmp_path / "cache" / "fake.pth"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD)
    monkeypatch.setattr(downloads, "download", lambda *a, **k: pytest.fail("downloaded"))
    assert resolve_artifact("fake") == cached


def test_cache_hit_verified_against_full_digest(tmp_path, monkeypatch):
    _fake_artifact(monkeypatch, "http://unused/fake.pth", sha256="0" * 64)
    cached = tmp_path / "cache" / "fake.pth"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD)
    with pytest.raises(WeightsError, match="does not match the published") as e:
        resolve_artifact("fake")
    assert str(cached) in str(e.value) and "\n" not in str(e.value)


def test_cache_prefix_mismatch_is_reported(tmp_path):
    cached = tmp_path / "cache" / "resnet50-0676ba61.pth"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD)
    with pytest.raises(WeightsError, match="does not start with 0676ba61") as e:
        resolve_artifact("resnet50_imagenet", offline=True)
    assert str(cached) in str(e.value) and "delete it" in str(e.value)


def test_cache_prefix_match_is_used(tmp_path, monkeypatch):
    _fake_artifact(monkeypatch, "http://unused/x", sha256=None, sha256_prefix=PAYLOAD_SHA[:8])
    cached = tmp_path / "cache" / "fake.pth"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD)
    assert resolve_artifact("fake", offline=True) == cached


def test_torch_hub_cache_used_for_backbone(tmp_path, monkeypatch):
    # A real resnet50 file cannot be made here, so a hub name carries the prefix of PAYLOAD.
    hub_name = f"resnet50-{PAYLOAD_SHA[:8]}.pth"
    _fake_artifact(monkeypatch, "http://unused/x", sha256=None, hub_filenames=(hub_name,))
    hub_file = tmp_path / "hub" / "checkpoints" / hub_name
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(PAYLOAD)
    assert resolve_artifact("fake", offline=True) == hub_file


def test_torch_hub_old_resnet_name_is_checked(tmp_path):
    # The old torchvision name is looked up, and verified against the prefix in its own name.
    hub_file = tmp_path / "hub" / "checkpoints" / "resnet50-19c8e357.pth"
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(PAYLOAD)
    with pytest.raises(WeightsError, match="does not start with 19c8e357") as e:
        resolve_artifact("resnet50_imagenet", offline=True)
    assert str(hub_file) in str(e.value)


def test_unknown_artifact():
    with pytest.raises(WeightsError, match="s2vs_dns"):
        resolve_artifact("nope")


def test_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_OFFLINE", "1")
    with pytest.raises(WeightsError) as e:
        resolve_artifact("s2vs_dns")
    msg = str(e.value)
    assert "\n" not in msg
    assert "offline (S2VS_OFFLINE is set)" in msg
    assert "s2vs_dns.pth" in msg
    assert "https://mever.iti.gr/s2vs/weights/s2vs_dns.pth" in msg
    assert str(tmp_path / "cache" / "s2vs_dns.pth") in msg


def test_offline_false_overrides_env(server, tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_OFFLINE", "true")
    _fake_artifact(monkeypatch, server.url("blob.bin"), sha256=PAYLOAD_SHA)
    assert resolve_artifact("fake", offline=False).read_bytes() == PAYLOAD


# ---------------------------------------------------------------------------------------------
# Download


def test_download_progress_and_atomic(server, tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "_CHUNK", 1024)
    calls: list[tuple[int, int | None]] = []
    dest = tmp_path / "dl" / "blob.bin"
    out = download(
        server.url("blob.bin"), dest, sha256=PAYLOAD_SHA,
        progress=CallbackProgress(download=lambda d, t: calls.append((d, t)))
    )
    assert out == dest and dest.read_bytes() == PAYLOAD
    done = [d for d, _ in calls]
    assert len(calls) > 5 and done == sorted(done) and done[-1] == len(PAYLOAD)
    assert all(t == len(PAYLOAD) for _, t in calls)
    assert _no_part_files(dest.parent)


def test_download_sha256_mismatch(server, tmp_path):
    dest = tmp_path / "dl" / "blob.bin"
    with pytest.raises(WeightsError, match="sha256") as e:
        download(server.url("blob.bin"), dest, sha256="0" * 64)
    assert not dest.exists() and _no_part_files(dest.parent)
    assert str(dest) in str(e.value) and server.url("blob.bin") in str(e.value)


def test_download_prefix_mismatch(server, tmp_path):
    dest = tmp_path / "dl" / "blob.bin"
    with pytest.raises(WeightsError, match="does not start with deadbeef"):
        download(server.url("blob.bin"), dest, sha256_prefix="deadbeef")
    assert not dest.exists() and _no_part_files(dest.parent)


def test_download_http_error(server, tmp_path):
    dest = tmp_path / "dl" / "missing.pth"
    with pytest.raises(WeightsError, match="HTTP 404") as e:
        download(server.url("missing.pth"), dest)
    assert "\n" not in str(e.value) and not dest.exists()


def test_download_unreachable_fails_fast(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/x"
    start = time.monotonic()
    with pytest.raises(WeightsError, match="cannot download x from") as e:
        download(url, tmp_path / "x")
    assert time.monotonic() - start < 5
    assert "refused" in str(e.value).lower() and "\n" not in str(e.value)


def test_download_timeout(tmp_path):
    # A socket that accepts connections (via the backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
        start = time.monotonic()
        with pytest.raises(WeightsError, match="no answer within 0.3 s"):
            download(url, tmp_path / "x", timeout=0.3)
        assert time.monotonic() - start < 5
    assert not (tmp_path / "x").exists() and _no_part_files(tmp_path)


def test_tofu_sidecar_detects_corruption(server, tmp_path, monkeypatch):
    _fake_artifact(monkeypatch, server.url("blob.bin"), sha256=None)
    path = resolve_artifact("fake")
    assert path == tmp_path / "cache" / "fake.pth" and path.read_bytes() == PAYLOAD
    sidecar = path.with_name("fake.pth.sha256")
    assert sidecar.read_text().split()[0] == PAYLOAD_SHA

    # A second resolution is a cache hit: no new request.
    assert resolve_artifact("fake") == path and len(server.requests) == 1

    path.write_bytes(PAYLOAD[: len(PAYLOAD) // 2])  # truncated after download
    with pytest.raises(WeightsError, match="recorded when it was downloaded"):
        resolve_artifact("fake")


def test_download_creates_no_sidecar_when_digest_known(server, tmp_path, monkeypatch):
    _fake_artifact(monkeypatch, server.url("blob.bin"), sha256=PAYLOAD_SHA)
    path = resolve_artifact("fake")
    assert not path.with_name("fake.pth.sha256").exists()


# ---------------------------------------------------------------------------------------------
# resolve_file_or_artifact


def test_resolve_file_or_artifact(tmp_path, monkeypatch):
    local = tmp_path / "mine.pth"
    local.write_bytes(b"x")
    aliases = {"dns": "s2vs_dns", "vcdb": "s2vs_vcdb"}
    assert resolve_file_or_artifact(str(local), aliases) == local

    monkeypatch.setattr(downloads, "resolve_artifact", lambda name, **kw: Path("/resolved") / name)
    assert resolve_file_or_artifact("dns", aliases) == Path("/resolved/s2vs_dns")

    for spec in ("missing.pth", "weights/net", str(tmp_path / "nope.pt")):
        with pytest.raises(WeightsError, match=r": file not found$"):
            resolve_file_or_artifact(spec, aliases)

    with pytest.raises(WeightsError, match="is a directory, expected a model file"):
        resolve_file_or_artifact(str(tmp_path), aliases, what="model")

    with pytest.raises(WeightsError, match=r"unknown model 's2vs_foo': use dns, vcdb, random or a file path$"):
        resolve_file_or_artifact("s2vs_foo", aliases, what="model", other_choices=("random",))


# ---------------------------------------------------------------------------------------------
# load_torch_file


def _published(path: Path) -> Path:
    torch.save(
        {
            "model": {"visil_head.conv1.weight": torch.ones(32, 1, 3, 3)},
            "args": argparse.Namespace(lr=1e-4, batch_sz=64),
            "global_step": 30000,
        },
        path,
    )
    return path


def test_load_good_and_published_layout(tmp_path):
    obj = load_torch_file(_published(tmp_path / "pub.pth"), "similarity network")
    assert isinstance(obj["args"], argparse.Namespace) and obj["args"].batch_sz == 64
    state = extract_state_dict(obj, tmp_path / "pub.pth")
    assert state["visil_head.conv1.weight"].shape == (32, 1, 3, 3)


def test_load_legacy_format(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_torch_file(path, "weights")["w"], torch.arange(3))


@pytest.mark.parametrize(
    "obj, name",
    [(datetime.datetime(2024, 1, 1), "datetime.datetime"), (Custom(), "Custom")],
)
def test_load_refuses_unsafe_globals(tmp_path, obj, name):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": obj}, path)
    with pytest.raises(CheckpointError, match="holds objects other than tensors") as e:
        load_torch_file(path, "weights")
    assert name in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_load_truncated(tmp_path):
    path = _published(tmp_path / "cut.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"not a valid PyTorch file \(truncated or corrupt\)"):
        load_torch_file(path, "weights")


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(os.urandom(2048)), "not a valid PyTorch file"),
        (lambda p: p.write_text("<html>Not Found</html>"), "not a valid PyTorch file"),
    ],
    ids=["missing", "empty", "directory", "random", "html"],
)
def test_load_bad_files(tmp_path, make, problem):
    path = tmp_path / "bad.pth"
    make(path)
    with pytest.raises(CheckpointError, match=problem) as e:
        load_torch_file(path, "similarity network weights")
    msg = str(e.value)
    assert msg.startswith(f"{path}: cannot load similarity network weights: ") and "\n" not in msg


# ---------------------------------------------------------------------------------------------
# extract_state_dict and check_state_dict


def test_extract_state_dict_layouts(tmp_path):
    w = torch.zeros(2)
    assert extract_state_dict({"a.weight": w}, "f") == {"a.weight": w}
    assert extract_state_dict({"model": {"a.weight": w}, "optimizer": {}}, "f") == {"a.weight": w}
    ddp = {"model": {"module.a.weight": w, "module.b.bias": w}}
    assert set(extract_state_dict(ddp, "f")) == {"a.weight", "b.bias"}
    for bad in ({"model": "nope"}, {"a": 1}, {}, [w], None):
        with pytest.raises(CheckpointError, match=r"^f: no state dict found \(expected a 'model' "):
            extract_state_dict(bad, "f")


def test_check_state_dict_messages():
    expected = {"visil_head.conv1.weight": (32, 1, 3, 3), "fc.bias": (4,)}
    state = {"visil_head.conv1.weight": torch.zeros(16, 1, 3, 3), "extra.w": torch.zeros(1)}
    good = {"visil_head.conv1.weight": torch.zeros(32, 1, 3, 3), "fc.bias": torch.zeros(4)}
    check_state_dict(good, expected, "f")  # a matching state dict passes silently
    with pytest.raises(CheckpointError) as e:
        check_state_dict(state, expected, "ckpt.pth")
    msg = str(e.value)
    assert msg.startswith("ckpt.pth: ") and "\n" not in msg
    assert "missing keys: fc.bias" in msg
    assert "unexpected keys: extra.w" in msg
    assert "visil_head.conv1.weight has shape (16, 1, 3, 3), expected (32, 1, 3, 3)" in msg


def test_check_state_dict_truncates_long_lists():
    expected = {f"k{i}": (1,) for i in range(17)}
    with pytest.raises(CheckpointError, match=r"missing keys: k0, k1, k2, k3, k4 … and 12 more"):
        check_state_dict({}, expected, "f")


# ---------------------------------------------------------------------------------------------
# save_checkpoint


def test_save_checkpoint_round_trip(tmp_path):
    path = tmp_path / "out" / "run.pth"
    state = {"a.weight": torch.randn(3, 2), "a.bias": torch.randn(3)}
    config = {"backbone": "resnet50", "dims": [512, 1024], "pca": True, "lr": 1e-4, "note": None}
    save_checkpoint(path, state, config, global_step=7, epoch=1)
    assert _no_part_files(path.parent)
    obj = load_torch_file(path, "checkpoint")
    assert obj["config"] == config and obj["global_step"] == 7 and obj["epoch"] == 1
    assert isinstance(obj["s2vs_version"], str) and obj["s2vs_version"]
    loaded = extract_state_dict(obj, path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_save_checkpoint_rejects_non_plain_config(tmp_path):
    path = tmp_path / "run.pth"
    with pytest.raises(TypeError, match="config.when"):
        save_checkpoint(path, {"w": torch.zeros(1)}, {"when": datetime.datetime.now()})
    with pytest.raises(TypeError, match="model"):
        save_checkpoint(path, {"w": torch.zeros(1)}, {}, model={})
    assert not path.exists() and _no_part_files(tmp_path)


# ---------------------------------------------------------------------------------------------
# seeded


def test_seeded_is_reproducible_and_restores_rng():
    torchvision = pytest.importorskip("torchvision")
    before = torch.get_rng_state()
    with seeded(0):
        a = torchvision.models.resnet18(weights=None).state_dict()
    with seeded(0):
        b = torchvision.models.resnet18(weights=None).state_dict()
    with seeded(1):
        c = torchvision.models.resnet18(weights=None).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
