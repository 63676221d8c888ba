"""Loading models by name or path: published layout, our own checkpoints, clear one-line errors."""
from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s2vs_cli.artifacts import ARTIFACTS
from s2vs_cli.errors import CheckpointError, ConfigError, WeightsError
from s2vs_cli.models import loading as models
from s2vs_cli.models.backbone import Backbone
from s2vs_cli.models.backbone_registry import BACKBONES, DEFAULT_BACKBONE, backbone_class, build_backbone
from s2vs_cli.models.checkpoints import save_checkpoint
from s2vs_cli.models.extractor import RegionExtractor
from s2vs_cli.models.visil import ViSiL

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("S2VS_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_published_checkpoint_loads_unchanged(parity_dir):
    network = models.load_similarity_network(str(parity_dir / "visil_random.pth"), device="cpu")
    reference = torch.load(parity_dir / "visil_random.pth", weights_only=True)["model"]
    assert network.attention is not None and not network.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, reference[key])


def test_published_layout_with_args_namespace_loads(tmp_path, parity_dir):
    state = torch.load(parity_dir / "visil_random.pth", weights_only=True)["model"]
    path = tmp_path / "s2vs_dns.pth"
    torch.save({"model": state, "args": argparse.Namespace(similarity_network="ViSiL", attention=True),
                "global_step": 30000, "optimizer": {"state": {}, "param_groups": []}}, path)
    network = models.load_similarity_network(str(path))
    assert torch.equal(network.visil_head.conv1.weight, state["visil_head.conv1.weight"])


def test_published_name_resolves_through_cache(tmp_path, parity_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(parity_dir / "visil_random.pth", cache / "s2vs_dns.pth")
    network = models.load_similarity_network("s2vs_dns")
    assert network.label == "s2vs_dns"


def test_own_checkpoint_round_trip(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(1)
        original = ViSiL(attention=False, binarization=True, binary_bits=128)
    path = tmp_path / "model.pth"
    save_checkpoint(path, original.state_dict(), original.config(), step=12)
    loaded = models.load_similarity_network(str(path))
    assert loaded.config() == original.config()
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_random_network_is_seeded_and_labelled():
    a = models.load_similarity_network("random", seed=5)
    b = models.load_similarity_network("random", seed=5)
    assert a.is_random and a.label == "random (seed 5)"
    assert torch.equal(a.attention.transform.weight, b.attention.transform.weight)


def test_missing_published_weights_offline_is_one_clear_line():
    with pytest.raises(WeightsError) as error:
        models.load_similarity_network("s2vs_dns")
    message = str(error.value)
    assert "\n" not in message
    assert "s2vs_dns.pth" in message and "https://mever.iti.gr/s2vs/weights/s2vs_dns.pth" in message
    assert "S2VS_OFFLINE" in message


def test_unknown_model_name():
    with pytest.raises(WeightsError, match="unknown model 'dns': use s2vs_dns, s2vs_vcdb, random or a file path"):
        models.load_similarity_network("dns")


def test_shape_mismatch_is_named(tmp_path, parity_dir):
    state = torch.load(parity_dir / "visil_random.pth", weights_only=True)["model"]
    state["visil_head.conv1.weight"] = torch.zeros(16, 1, 3, 3)
    del state["visil_head.fconv.bias"]
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as error:
        models.load_similarity_network(str(path))
    message = str(error.value)
    assert "\n" not in message
    assert "visil_head.fconv.bias" in message and "(16, 1, 3, 3)" in message


def test_truncated_checkpoint(tmp_path, parity_dir):
    data = (parity_dir / "visil_random.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        models.load_similarity_network(str(path))


def test_backbone_from_torchvision_state_dict(parity_weights):
    backbone, label = models.load_backbone(str(parity_weights / "resnet_random.pth"))
    reference = torch.load(parity_weights / "resnet_random.pth", weights_only=True)
    assert torch.equal(backbone.cnn.conv1.weight, reference["conv1.weight"])
    assert label.startswith("resnet_random.pth (sha256 ") and len(label) == len("resnet_random.pth (sha256 )") + 12


def test_backbone_from_hub_cache(tmp_path, parity_weights):
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    # The file name must carry the sha256 prefix of its content, as torchvision's do.
    data = (parity_weights / "resnet_random.pth").read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    artifact = ARTIFACTS["resnet50_imagenet"]
    patched = type(artifact)(**{**artifact.__dict__, "filename": f"resnet50-{prefix}.pth",
                                "sha256_prefix": prefix, "hub_filenames": (f"resnet50-{prefix}.pth",)})
    ARTIFACTS["resnet50_imagenet"] = patched
    try:
        (hub / patched.filename).write_bytes(data)
        backbone, label = models.load_backbone("imagenet")
    finally:
        ARTIFACTS["resnet50_imagenet"] = artifact
    assert label == "imagenet"
    assert torch.equal(backbone.cnn.conv1.weight, torch.load(hub / patched.filename, weights_only=True)["conv1.weight"])


def test_whitening_from_file_and_npz(tmp_path, parity_weights):
    whitening, _ = models.load_whitening(str(parity_weights / "pca_random.pth"))
    state = torch.load(parity_weights / "pca_random.pth", weights_only=True)
    npz = tmp_path / "pca.npz"
    np.savez(npz, **{k: v.numpy() for k, v in state.items()})
    from_npz, _ = models.load_whitening(str(npz))
    torch.testing.assert_close(whitening.projection, from_npz.projection)
    assert whitening.projection.shape == (3840, 512)


def test_whitening_with_wrong_layout(tmp_path):
    path = tmp_path / "pca.pth"
    torch.save({"mean": torch.zeros(3840), "d": torch.ones(100)}, path)
    with pytest.raises(CheckpointError, match=r"missing.*V.*d has shape \(100,\), expected \(3840,\)"):
        models.load_whitening(str(path))


def test_whitening_none_gives_raw_region_vectors():
    whitening, label = models.load_whitening("none")
    assert whitening is None and label == "none"


def test_hub_entry_point_loads_like_the_original(tmp_path, parity_dir):
    network = torch.hub.load(str(REPO), "s2vs_dns", source="local", weights=str(parity_dir / "visil_random.pth"))
    assert network.attention is not None
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(parity_dir / "visil_random.pth", cache / "s2vs_dns.pth")
    assert torch.hub.load(str(REPO), "s2vs_dns", source="local").label == "s2vs_dns"


def test_offline_default_weights_name_every_missing_file_at_once(tmp_path):
    with pytest.raises(WeightsError) as error:
        models.check_available("imagenet", "vcdb", "s2vs_dns", features_only=False)
    message = str(error.value)
    assert "\n" not in message and message.startswith("3 weight files are missing and cannot be downloaded (offline: S2VS_OFFLINE is set): ")
    cache = tmp_path / "cache"
    for filename, option in (("resnet50-0676ba61.pth", "--backbone-weights"), ("pca_resnet50_vcdb_1M.pth", "--pca"),
                             ("s2vs_dns.pth", "--model")):
        assert f"{filename} (put it in {cache}/ or pass {option} FILE)" in message
    with pytest.raises(WeightsError, match="^2 weight files are missing"):  # the network is not needed
        models.check_available("imagenet", "vcdb", "s2vs_dns", features_only=True)
    with pytest.raises(WeightsError, match="^2 weight files are missing"):  # load_extractor checks before loading
        models.load_extractor("imagenet", "vcdb", device="cpu")


def test_available_weights_pass_the_offline_check(tmp_path, parity_dir):
    (tmp_path / "cache").mkdir()
    shutil.copy(parity_dir / "visil_random.pth", tmp_path / "cache" / "s2vs_dns.pth")
    models.check_available("random", "none", "s2vs_dns")  # cached, or nothing to download
    models.check_available("random", str(parity_dir / "visil_random.pth"), "s2vs_vcdb", features_only=True)
    with pytest.raises(WeightsError, match=r"^1 weight file is missing .*s2vs_vcdb.pth .*--model FILE\); to run "
                                           r"without downloads, seeded random weights take their place"):
        models.check_available("random", "random", "s2vs_vcdb")
    models.check_available("imagenet", "vcdb", "s2vs_vcdb", offline=False)  # online: downloads will fetch them


def test_download_failure_names_the_option_that_takes_a_local_file():
    with pytest.raises(WeightsError, match=r"or pass --pca FILE; to run without downloads, seeded random weights"):
        models.load_whitening("vcdb")


def test_models_carry_what_they_are_as_fields(tmp_path, parity_dir):
    extractor = models.load_extractor("random", "none", device="cpu", seed=3)
    assert (extractor.backbone_label, extractor.whitening_label) == ("ResNet-50 random (seed 3)", "none")
    assert extractor.label == "ResNet-50 random (seed 3), whitening none" and extractor.is_random
    assert extractor.dims == 3840
    plain = RegionExtractor()
    assert not plain.is_random and plain.whitening_label == "none" and plain.backbone_label.startswith("ResNet-50")
    network = models.load_similarity_network(str(parity_dir / "visil_random.pth"))
    assert network.label == str(parity_dir / "visil_random.pth") and not network.is_random
    assert not ViSiL().is_random and ViSiL(label="mine").label == "mine"


def test_backbone_registry_builds_each_backbone():
    assert DEFAULT_BACKBONE in BACKBONES
    for name, cls in BACKBONES.items():
        backbone = build_backbone(name)
        assert isinstance(backbone, Backbone) and isinstance(backbone, cls)
        assert backbone.title and backbone.region_dims > 0 and backbone.regions > 0
    with pytest.raises(ConfigError, match="unknown backbone 'vit'"):
        build_backbone("vit")


def test_every_backbone_is_looked_up_by_name_through_one_function():
    """The registry is real: the runtime takes a backbone name, and nothing outside models/ reads the table."""
    from pathlib import Path

    from s2vs_cli.runtime import Runtime

    assert backbone_class() is BACKBONES[DEFAULT_BACKBONE] and backbone_class(DEFAULT_BACKBONE) is backbone_class()
    with pytest.raises(ConfigError, match=f"unknown backbone 'vit': known ones are {DEFAULT_BACKBONE}"):
        Runtime.cpu().load_extractor("random", "random", backbone="vit")
    runtime = Runtime.cpu().load_models("random", "none", features_only=True, backbone=DEFAULT_BACKBONE)
    assert runtime.extractor.backbone_label.startswith(backbone_class().title) and runtime.network is None
    package = Path(__file__).resolve().parents[1] / "s2vs_cli"
    readers = [str(p.relative_to(package)) for p in package.rglob("*.py")
               if "BACKBONES[" in p.read_text() and p.parent.name != "models"]
    assert readers == []


class _TinyBackbone(Backbone):
    """A 4-region colour backbone: what a new registered extractor needs, no more."""

    title, description, region_dims, regions = "Tiny", "mean colour of 4 quadrants", 3, 4

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def normalise(self, frames):
        return frames.permute(0, 3, 1, 2).float() / 255 if frames.shape[-1] == 3 else frames.float()

    def feature_maps(self, x):
        return [torch.nn.functional.adaptive_avg_pool2d(x * self.scale, 2)]

    def region_vectors(self, maps):
        return maps[0].flatten(2).transpose(1, 2).float()  # [N, 4, 3]


def test_a_registered_backbone_is_chosen_by_the_config_field_and_the_flag(monkeypatch, tmp_path):
    """`backbone:` (YAML) and `--backbone` reach the loaded extractor; an unknown name is one line, exit 2."""
    from typer.testing import CliRunner

    from s2vs_cli.cli import app
    from s2vs_cli.config import CompareConfig, ExtractFeaturesConfig, build_config
    from s2vs_cli.runtime import Runtime

    monkeypatch.setitem(BACKBONES, "tiny", _TinyBackbone)
    assert CompareConfig().backbone == DEFAULT_BACKBONE  # the paper's by default
    cfg = CompareConfig(backbone="tiny", backbone_weights="random", pca="none", features_only=True)
    runtime = Runtime.cpu().prepare(cfg)
    assert isinstance(runtime.extractor.backbone, _TinyBackbone) and runtime.extractor.dims == 3
    assert runtime.extractor.backbone_label == "Tiny random (seed 0)"
    frames = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    assert tuple(runtime.extractor(frames).shape) == (2, 4, 3)

    (tmp_path / "cfg.yaml").write_text("backbone: tiny\n")
    from_yaml = build_config(ExtractFeaturesConfig, str(tmp_path / "cfg.yaml"), {})
    assert from_yaml.backbone == "tiny"
    result = CliRunner().invoke(app, ["compare", "a.mp4", "b.mp4", "--backbone", "tiny", "--print-config"])
    assert result.exit_code == 0 and "backbone: tiny" in result.output
    with pytest.raises(ConfigError, match="unknown backbone 'vgg': known ones are resnet50_l3imac, tiny"):
        Runtime.cpu().prepare(CompareConfig(backbone="vgg", backbone_weights="random", pca="none",
                                           features_only=True))
    video = REPO.parent / "shared" / "videos" / "bikes.mp4"
    if not video.exists():
        pytest.skip("../shared/videos is absent: the command-line half needs a real clip")
    video = str(video)
    result = CliRunner().invoke(app, ["compare", video, video, "--backbone", "vgg", "--backbone-weights", "random",
                                      "--pca", "none", "--features-only", "-q"])
    assert result.exit_code == 2 and "unknown backbone 'vgg': known ones are resnet50_l3imac, tiny" in result.output
