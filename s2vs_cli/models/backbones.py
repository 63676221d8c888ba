"""The region extractors s2vs can build, by name: adding one is one `Backbone` class and one line here."""
from __future__ import annotations

from ..errors import ConfigError
from .backbone import Backbone
from .resnet import ResNet50LiMAC

BACKBONES: dict[str, type[Backbone]] = {
    "resnet50_l3imac": ResNet50LiMAC,
}
DEFAULT_BACKBONE = "resnet50_l3imac"


def build_backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    """An untrained backbone of the registry (no download; `loading` attaches weights)."""
    try:
        return BACKBONES[name]()
    except KeyError:
        raise ConfigError(f"unknown backbone '{name}': known ones are {', '.join(BACKBONES)}") from None
