"""Device and precision resolution."""
from __future__ import annotations

import pytest
import torch

from s2vs_cli import runtime
from s2vs_cli.errors import ConfigError


def test_cpu_device():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_device_names():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            runtime.resolve_device("cuda:0")


def test_precision_auto(monkeypatch):
    assert runtime.resolve_precision("auto", torch.device("cuda")) == "fp16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_precision_explicit_and_invalid():
    assert runtime.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert runtime.resolve_precision("BF16", torch.device("cpu")) == "bf16"
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        runtime.resolve_precision("half", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16 is for CUDA"):
        runtime.resolve_precision("fp16", torch.device("cpu"))


def test_autocast_is_noop_in_fp32():
    with runtime.autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
