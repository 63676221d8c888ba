"""The region extractors s2vs can build, by name: adding one is one `Backbone` class and one line here.

`backbone_class(name)` is the one lookup (an unknown name is a usage error naming the choices); loading,
whitening's dimensions and the labels of calibration and fit-pca all ask it, never the table itself.
"""
from __future__ import annotations

from ..errors import ConfigError
from .backbone import Backbone
from .resnet import ResNet50LiMAC

BACKBONES: dict[str, type[Backbone]] = {
    "resnet50_l3imac": ResNet50LiMAC,
}
DEFAULT_BACKBONE = "resnet50_l3imac"


def backbone_class(name: str = DEFAULT_BACKBONE) -> type[Backbone]:
    """The registered backbone `name` (its class: title, region dims, ...); ConfigError naming the choices."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone '{name}': known ones are {', '.join(BACKBONES)}") from None


def build_backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    """An untrained backbone of the registry (no download; `loading` attaches weights)."""
    return backbone_class(name)()
