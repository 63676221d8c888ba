"""Load the region extractor and the similarity network by name or path, with their weights attached.

Names: backbone weights `imagenet | random | PATH`, whitening `vcdb | none | random | PATH`, similarity
network `s2vs_dns | s2vs_vcdb | random | PATH` (the published names come from `s2vs_cli.artifacts`).
`random` weights are seeded, reproducible and labelled as such. Offline, `check_available` names every
published file a command still lacks, at once, before anything is loaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artifacts import BACKBONE, NETWORK, WHITENING, Artifact, artifacts_of, choices
from ..compute import resolve_device
from ..errors import CheckpointError, ConfigError, WeightsError
from ..progress import SILENT, Progress
from .backbone import Backbone
from .backbone_registry import DEFAULT_BACKBONE, backbone_class, build_backbone
from .checkpoints import check_state_dict, extract_state_dict, load_torch_file
from ..downloads import (RANDOM_WEIGHTS_ROUTE, cache_dir, cached_copy, local_file_hint, offline_cause,
                         resolve_file_or_artifact, sha256_of)
from .extractor import RegionExtractor
from .seeding import seeded
from .visil import ViSiL
from .whitening import RANDOM_SOURCE_KEY, PCAWhitening

RANDOM, NO_WHITENING = "random", "none"


def file_label(path: Path) -> str:
    """Name weights from a user's file by name and content, so moving it keeps the label and rewriting it does not."""
    return f"{path.name} (sha256 {sha256_of(path)[:12]})"


def _device(device: str | torch.device) -> torch.device:
    """A torch.device as given, or a plain string resolved for one process (as a script or torch.hub asks)."""
    return device if isinstance(device, torch.device) else resolve_device(device)


def needed_artifacts(backbone_weights: str | None = None, pca: str | None = None, model: str | None = None
                     ) -> list[Artifact]:
    """The published files these choices load (None: that model is not loaded); paths and `random` need none."""
    wanted = [(BACKBONE, backbone_weights), (WHITENING, pca), (NETWORK, model)]
    needed = []
    for kind, spec in wanted:
        if spec is not None and spec in choices(kind) and not Path(spec).expanduser().is_file():
            needed.append(artifacts_of(kind)[choices(kind)[spec]])
    return needed


def missing_artifacts(backbone_weights: str | None = None, pca: str | None = None, model: str | None = None
                      ) -> list[Artifact]:
    """The published files these choices load that are neither in the s2vs cache nor in torch hub's."""
    return [a for a in needed_artifacts(backbone_weights, pca, model) if cached_copy(a) is None]


def check_available(backbone_weights: str = "imagenet", pca: str = "vcdb", model: str = "s2vs_dns",
                    features_only: bool = False, offline: bool | None = None) -> None:
    """Offline, raise ONE WeightsError naming every published file the command needs and lacks, where to put
    it and the option that takes a local copy. Online (or with nothing missing) it does nothing."""
    cause = offline_cause(offline)
    missing = missing_artifacts(backbone_weights, pca, None if features_only else model)
    if cause is None or not missing:
        return
    files = ", ".join(f"{a.filename} (put it in {cache_dir()}/ {local_file_hint(a)})" for a in missing)
    count = f"{len(missing)} weight files are" if len(missing) > 1 else "1 weight file is"
    raise WeightsError(f"{count} missing and cannot be downloaded (offline: {cause}): {files}; "
                       f"{RANDOM_WEIGHTS_ROUTE}")


def load_backbone(spec: str = "imagenet", seed: int = 0, progress: Progress = SILENT,
                  name: str = DEFAULT_BACKBONE) -> tuple[Backbone, str]:
    """The backbone `name` with `imagenet`, `random` (seeded) or a state-dict file's weights -> (module, label)."""
    if spec == RANDOM:
        with seeded(seed):
            return build_backbone(name), f"random (seed {seed})"
    path = resolve_file_or_artifact(spec, choices(BACKBONE), "backbone", (RANDOM,), progress)
    backbone = build_backbone(name)
    backbone.load_weights(extract_state_dict(load_torch_file(path, f"{backbone.title} weights"), path), path)
    return backbone, spec if spec in choices(BACKBONE) else file_label(path)


def load_whitening(spec: str = "vcdb", dims: int = 512, seed: int = 0, progress: Progress = SILENT,
                   in_dims: int | None = None) -> tuple[PCAWhitening | None, str]:
    """PCA whitening from `vcdb`, `none`, `random` (seeded) or a file with mean, d, V -> (module, label).

    `in_dims`: the backbone's region dimensions (default: the default backbone's).
    """
    in_dims = in_dims or backbone_class().region_dims
    if spec == NO_WHITENING:
        return None, NO_WHITENING
    if spec == RANDOM:
        return PCAWhitening.random(seed, in_dims, dims), f"random (seed {seed})"
    path = resolve_file_or_artifact(spec, choices(WHITENING), "whitening", (NO_WHITENING, RANDOM), progress)
    if path.suffix == ".npz":  # the original tool's own PCALayer.save format
        try:
            with np.load(path, allow_pickle=False) as f:
                state = {k: torch.from_numpy(f[k]) for k in f.files}
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot load whitening: {e}") from None
    else:
        state = load_torch_file(path, "whitening")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: whitening must be a dict with 'mean', 'd' and 'V'")
    expected = {"mean": (in_dims,), "d": (in_dims,), "V": (in_dims, in_dims)}
    fitted_on_random = _flag(state.get(RANDOM_SOURCE_KEY))
    state = {k: torch.as_tensor(state[k]) for k in expected if k in state}
    check_state_dict(state, expected, path)
    whitening = PCAWhitening.from_eigen(state["mean"], state["d"], state["V"], dims, is_random=fitted_on_random)
    return whitening, spec if spec in choices(WHITENING) else file_label(path)


def _flag(value) -> bool:
    """A whitening file's true/false entry (a bool, or a one-element tensor from an .npz); else False."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and bool(value.item())
    return value is True


def load_extractor(backbone_weights: str = "imagenet", pca: str = "vcdb", device: str | torch.device = "auto",
                   seed: int = 0, progress: Progress = SILENT, backbone: str = DEFAULT_BACKBONE) -> RegionExtractor:
    """The region extractor, ready for inference on `device`; `.label` says which weights it carries."""
    check_available(backbone_weights, pca, features_only=True)
    cnn, backbone_label = load_backbone(backbone_weights, seed, progress, backbone)
    whitening, whitening_label = load_whitening(pca, seed=seed, progress=progress, in_dims=cnn.region_dims)
    extractor = RegionExtractor(cnn, whitening, backbone_label=f"{cnn.title} {backbone_label}",
                                whitening_label=whitening_label, is_random=backbone_weights == RANDOM)
    return extractor.optimize_for_inference().to(_device(device))


def network_config_from_state(state: dict[str, torch.Tensor]) -> dict:
    """ViSiL constructor arguments implied by a state dict (published checkpoints carry no config)."""
    if "attention.transform.weight" in state:
        return {"dims": state["attention.transform.weight"].shape[1], "attention": True, "binarization": False}
    if "binarization.W" in state:
        dims, bits = state["binarization.W"].shape
        return {"dims": dims, "attention": False, "binarization": True, "binary_bits": bits}
    return {"dims": 512, "attention": False, "binarization": False}


def load_similarity_network(model: str = "s2vs_dns", device: str | torch.device = "auto", seed: int = 0,
                            progress: Progress = SILENT) -> ViSiL:
    """The ViSiL network from `s2vs_dns`, `s2vs_vcdb`, `random` (seeded) or a checkpoint path, in eval mode."""
    if model == RANDOM:
        with seeded(seed):
            network = ViSiL(label=f"random (seed {seed})", is_random=True)
        return network.to(_device(device)).eval()
    path = resolve_file_or_artifact(model, choices(NETWORK), "model", (RANDOM,), progress)
    checkpoint = load_torch_file(path, "similarity network")
    state = extract_state_dict(checkpoint, path)
    saved = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    config = saved if isinstance(saved, dict) else network_config_from_state(state)
    label = model if model in choices(NETWORK) else str(path)
    try:
        network = ViSiL(**config, label=label)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid network config {config}: {e}") from None
    check_state_dict(state, {k: tuple(v.shape) for k, v in network.state_dict().items()}, path)
    network.load_state_dict(state)
    return network.to(_device(device)).eval()


def load_models(backbone_weights: str, pca: str, model: str, features_only: bool, device: torch.device,
                seed: int = 0, progress: Progress = SILENT, backbone: str = DEFAULT_BACKBONE
                ) -> tuple[RegionExtractor, ViSiL | None]:
    """The extractor and (unless features only) the similarity network a command runs with; checks they fit."""
    check_available(backbone_weights, pca, model, features_only)  # every missing file named at once
    extractor = load_extractor(backbone_weights, pca, device, seed, progress, backbone)
    if features_only:
        return extractor, None
    network = load_similarity_network(model, device, seed, progress)
    if network.dims != extractor.dims:
        raise ConfigError(f"the similarity network takes {network.dims}-d features but --pca {pca} gives "
                          f"{extractor.dims}-d ones; use --pca vcdb (or random), or --features-only")
    return extractor, network
