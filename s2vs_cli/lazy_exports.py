"""A package's public names imported on first use, so that importing the package loads nothing heavy
(`s2vs --help` must not import torch): the module-level __getattr__ and __dir__ of a name -> module table."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], defined: tuple[str, ...] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`, whose name `n` is imported from its submodule `exports[n]`
    (`defined`: the names the package defines itself, listed by dir() too)."""
    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted([*exports, *defined])

    return getattr_, dir_
