"""Load the region extractor and the similarity network by name or path, with their weights attached.

Names: backbone `imagenet | random | PATH`, whitening `vcdb | none | random | PATH`, similarity network
`s2vs_dns | s2vs_vcdb | random | PATH`. `random` weights are seeded, reproducible and labelled as such.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import weights
from ..errors import CheckpointError, ConfigError
from .extractor import REGION_DIMS, PCAWhitening, RegionExtractor, build_resnet50
from ..runtime import resolve_device
from .visil import ViSiL

BACKBONE_NAMES = {"imagenet": "resnet50_imagenet"}
PCA_NAMES = {"vcdb": "pca_vcdb"}
MODEL_NAMES = {name: name for name in weights.available_models()}


def file_label(path: Path) -> str:
    """Name weights from a user's file by name and content, so moving it keeps the label and rewriting it does not."""
    return f"{path.name} (sha256 {weights.sha256_of(path)[:12]})"


def load_backbone(spec: str = "imagenet", seed: int = 0, progress: weights.ProgressFn | None = None) -> tuple[torch.nn.Module, str]:
    """ResNet-50 trunk with `imagenet`, `random` (seeded) or a torchvision state dict -> (module, label)."""
    if spec == "random":
        with weights.seeded(seed):
            return build_resnet50(), f"random (seed {seed})"
    path = weights.resolve_file_or_artifact(spec, BACKBONE_NAMES, "backbone", ("random",), progress)
    state = weights.extract_state_dict(weights.load_torch_file(path, "ResNet-50 weights"), path)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the classifier is unused
    cnn = build_resnet50()
    weights.check_state_dict(state, {k: tuple(v.shape) for k, v in cnn.state_dict().items()}, path)
    cnn.load_state_dict(state)
    return cnn, spec if spec in BACKBONE_NAMES else file_label(path)


def load_whitening(spec: str = "vcdb", dims: int = 512, seed: int = 0,
                   progress: weights.ProgressFn | None = None) -> tuple[PCAWhitening | None, str]:
    """PCA whitening from `vcdb`, `none`, `random` (seeded) or a file with mean, d, V -> (module, label)."""
    if spec == "none":
        return None, "none"
    if spec == "random":
        return PCAWhitening.random(seed, dims=dims), f"random (seed {seed})"
    path = weights.resolve_file_or_artifact(spec, PCA_NAMES, "whitening", ("none", "random"), progress)
    if path.suffix == ".npz":  # the original tool's own PCALayer.save format
        try:
            with np.load(path, allow_pickle=False) as f:
                state = {k: torch.from_numpy(f[k]) for k in f.files}
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot load whitening: {e}") from None
    else:
        state = weights.load_torch_file(path, "whitening")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: whitening must be a dict with 'mean', 'd' and 'V'")
    expected = {"mean": (REGION_DIMS,), "d": (REGION_DIMS,), "V": (REGION_DIMS, REGION_DIMS)}
    state = {k: torch.as_tensor(state[k]) for k in expected if k in state}
    weights.check_state_dict(state, expected, path)
    whitening = PCAWhitening.from_eigen(state["mean"], state["d"], state["V"], dims)
    return whitening, spec if spec in PCA_NAMES else file_label(path)


def load_extractor(backbone_weights: str = "imagenet", pca: str = "vcdb", device: str | torch.device = "auto",
                   seed: int = 0, progress: weights.ProgressFn | None = None) -> RegionExtractor:
    """The region extractor, ready for inference on `device`; `.label` says which weights it carries."""
    cnn, backbone_label = load_backbone(backbone_weights, seed, progress)
    whitening, whitening_label = load_whitening(pca, seed=seed, progress=progress)
    extractor = RegionExtractor(cnn, whitening).optimize_for_inference()
    extractor.backbone_label, extractor.whitening_label = f"ResNet-50 {backbone_label}", whitening_label
    extractor.label = f"ResNet-50 {backbone_label}, whitening {whitening_label}"
    extractor.is_random = backbone_label.startswith("random")
    device = device if isinstance(device, torch.device) else resolve_device(device)
    return extractor.to(device)


def network_config_from_state(state: dict[str, torch.Tensor]) -> dict:
    """ViSiL constructor arguments implied by a state dict (published checkpoints carry no config)."""
    if "attention.transform.weight" in state:
        return {"dims": state["attention.transform.weight"].shape[1], "attention": True, "binarization": False}
    if "binarization.W" in state:
        dims, bits = state["binarization.W"].shape
        return {"dims": dims, "attention": False, "binarization": True, "binary_bits": bits}
    return {"dims": 512, "attention": False, "binarization": False}


def load_similarity_network(model: str = "s2vs_dns", device: str | torch.device = "auto", seed: int = 0,
                            progress: weights.ProgressFn | None = None) -> ViSiL:
    """The ViSiL network from `s2vs_dns`, `s2vs_vcdb`, `random` (seeded) or a checkpoint path, in eval mode."""
    if model == "random":
        with weights.seeded(seed):
            network = ViSiL()
        network.label = f"random (seed {seed})"
    else:
        path = weights.resolve_file_or_artifact(model, MODEL_NAMES, "model", ("random",), progress)
        checkpoint = weights.load_torch_file(path, "similarity network")
        state = weights.extract_state_dict(checkpoint, path)
        saved = checkpoint.get("config") if isinstance(checkpoint, dict) else None
        config = saved if isinstance(saved, dict) else network_config_from_state(state)
        try:
            network = ViSiL(**config)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: invalid network config {config}: {e}") from None
        weights.check_state_dict(state, {k: tuple(v.shape) for k, v in network.state_dict().items()}, path)
        network.load_state_dict(state)
        network.label = model if model in MODEL_NAMES else str(path)
    network.is_random = model == "random"
    device = device if isinstance(device, torch.device) else resolve_device(device)
    return network.to(device).eval()


def load_models(backbone_weights: str, pca: str, model: str, features_only: bool, device: torch.device,
                seed: int = 0, progress: weights.ProgressFn | None = None) -> tuple[RegionExtractor, ViSiL | None]:
    """The extractor and (unless features only) the similarity network a command runs with; checks they fit."""
    extractor = load_extractor(backbone_weights, pca, device, seed, progress)
    if features_only:
        return extractor, None
    network = load_similarity_network(model, device, seed, progress)
    if network.dims != extractor.dims:
        raise ConfigError(f"the similarity network takes {network.dims}-d features but --pca {pca} gives "
                          f"{extractor.dims}-d ones; use --pca vcdb (or random), or --features-only")
    return extractor, network
