"""Device and precision resolution (compute.py), and the Runtime that decides them once per process."""
from __future__ import annotations

import pytest
import torch

from s2vs_cli import compute, runtime
from s2vs_cli.errors import ConfigError


def test_cpu_device():
    assert compute.resolve_device("cpu") == torch.device("cpu")
    assert compute.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_device_names():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        compute.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            compute.resolve_device("cuda:0")


def test_precision_auto(monkeypatch):
    assert compute.resolve_precision("auto", torch.device("cuda")) == "fp16"
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: True)
    assert compute.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: False)
    assert compute.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_precision_explicit_and_invalid():
    assert compute.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert compute.resolve_precision("BF16", torch.device("cpu")) == "bf16"
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        compute.resolve_precision("half", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16 is for CUDA"):
        compute.resolve_precision("fp16", torch.device("cpu"))


def test_autocast_is_noop_in_fp32():
    with runtime.autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")


# ---------------------------------------------------------------------------------------------
# Where each torchrun rank runs: the pure decision, then that Runtime.start applies it in the right order.

from s2vs_cli.distributed import ProcessGroup, place_from_env  # noqa: E402


@pytest.mark.parametrize("spec, local_rank, world_size, cuda_devices, expected", [
    ("auto", 0, 2, 2, "cuda:0"),      # torchrun, two GPUs: one each
    ("auto", 1, 2, 2, "cuda:1"),
    ("cuda", 1, 2, 2, "cuda:1"),
    ("auto", 3, 4, 8, "cuda:3"),
    ("auto", 0, 2, 0, "cpu"),         # torchrun without CUDA: every rank on the CPU (gloo)
    ("auto", 1, 2, 0, "cpu"),
    ("cpu", 1, 2, 2, "cpu"),
    ("auto", 0, 1, 1, "cuda:0"),      # one process
    ("cuda", 0, 1, 2, "cuda:0"),
    ("cuda:1", 0, 1, 2, "cuda:1"),
    ("CUDA:1", 0, 1, 2, "cuda:1"),
    ("auto", 0, 1, 0, "cpu"),
    ("", 0, 1, 0, "cpu"),
])
def test_device_for_rank(spec, local_rank, world_size, cuda_devices, expected):
    assert compute.device_for_rank(spec, local_rank, world_size, cuda_devices) == expected


@pytest.mark.parametrize("spec, local_rank, world_size, cuda_devices, message", [
    ("cuda:1", 0, 2, 2, "device 'cuda:1' under torchrun"),  # every rank would pile onto one GPU
    ("cuda:0", 1, 2, 2, "device 'cuda:0' under torchrun"),
    ("auto", 2, 3, 2, "LOCAL_RANK 2 has no GPU: 2 CUDA device"),
    ("cuda", 1, 2, 1, "LOCAL_RANK 1 has no GPU: 1 CUDA device"),
    ("cuda:2", 0, 1, 2, "device 'cuda:2' has no GPU"),
    ("cuda", 0, 2, 0, "CUDA is not available"),
    ("cuda:0", 0, 1, 0, "CUDA is not available"),
    ("tpu", 0, 1, 2, "unknown device 'tpu'"),
    ("cuda:x", 0, 1, 2, "unknown device 'cuda:x'"),
])
def test_device_for_rank_refuses(spec, local_rank, world_size, cuda_devices, message):
    with pytest.raises(ConfigError, match=message):
        compute.device_for_rank(spec, local_rank, world_size, cuda_devices)


@pytest.mark.parametrize("environ, expected", [
    ({}, ProcessGroup(0, 1, 0)),                                                       # plain python
    ({"LOCAL_RANK": "1"}, ProcessGroup(0, 1, 0)),                                      # not torchrun's set
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, ProcessGroup(0, 2, 0)),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, ProcessGroup(1, 2, 1)),
    ({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, ProcessGroup(5, 8, 1)),      # second node of 4 GPUs each
    ({"RANK": "1", "WORLD_SIZE": "2"}, ProcessGroup(1, 2, 0)),
])
def test_place_from_env(environ, expected):
    assert place_from_env(environ) == expected


def test_place_from_env_refuses_non_integers():
    with pytest.raises(ConfigError, match="must be integers"):
        place_from_env({"RANK": "one", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


@pytest.fixture
def torchrun_rank_1_of_2(monkeypatch):
    """This process as rank 1 of 2 on a two-GPU machine, without a GPU: the calls are recorded, in order."""
    calls = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(runtime, "visible_cuda_devices", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", torch.device(device))))

    def join(backend: str = "gloo") -> ProcessGroup:
        calls.append(("join_process_group", backend))
        return place_from_env()

    monkeypatch.setattr(runtime, "join_process_group", join)
    return calls


def test_runtime_start_sets_the_ranks_gpu_before_joining_the_group(torchrun_rank_1_of_2):
    started = runtime.Runtime.start("auto", "auto", distributed=True, backend="auto")
    assert torchrun_rank_1_of_2 == [("set_device", torch.device("cuda:1")), ("join_process_group", "nccl")]
    assert started.device == torch.device("cuda:1") and started.precision == "fp16"
    assert started.group == ProcessGroup(1, 2, 1)


def test_the_runtime_hands_its_decision_down_as_one_compute():
    cpu = runtime.Runtime.cpu("fp32")
    assert cpu.compute == compute.Compute(torch.device("cpu"), "fp32")
    with cpu.autocast():
        assert not torch.is_autocast_enabled("cpu")
    with compute.Compute(torch.device("cpu"), "bf16").autocast():
        assert torch.is_autocast_enabled("cpu")
    assert runtime.autocast is compute.autocast  # still importable from runtime


def test_runtime_start_bulk_jobs_join_over_gloo(torchrun_rank_1_of_2):
    started = runtime.Runtime.start("cuda", "fp32", distributed=True)
    assert torchrun_rank_1_of_2 == [("set_device", torch.device("cuda:1")), ("join_process_group", "gloo")]
    assert started.device == torch.device("cuda:1")


def test_runtime_start_refuses_one_gpu_for_every_rank(torchrun_rank_1_of_2):
    with pytest.raises(ConfigError, match="under torchrun"):
        runtime.Runtime.start("cuda:0", distributed=True)
    assert torchrun_rank_1_of_2 == []  # nothing set, nothing joined


def test_runtime_start_without_distributed_ignores_torchrun(torchrun_rank_1_of_2):
    started = runtime.Runtime.start("cuda:0", "fp32")
    assert torchrun_rank_1_of_2 == [("set_device", torch.device("cuda:0"))]
    assert started.group == ProcessGroup()


# ---------------------------------------------------------------------------------------------
# Every command that may run under torchrun places its process through Runtime.start.


@pytest.fixture
def runtime_starts(monkeypatch):
    """Runtime.start records how it was called and stops the command there (exit 1, one line)."""
    from s2vs_cli.errors import S2VSError

    calls = []

    def start(cls, device="auto", precision="auto", compile=False, seed=0, *, distributed=False, backend="gloo",
              progress=None):
        calls.append({"device": device, "precision": precision, "seed": seed, "distributed": distributed,
                      "backend": backend})
        raise S2VSError("stopped at Runtime.start")

    monkeypatch.setattr(runtime.Runtime, "start", classmethod(start))
    return calls


def _invoke(args: list[str]):
    from typer.testing import CliRunner

    from s2vs_cli.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "stopped at Runtime.start" in result.output, result.output
    return result


def test_train_places_its_process_through_the_runtime(runtime_starts, monkeypatch, tmp_path):
    from s2vs_cli.jobs import train

    monkeypatch.setattr(train, "check_training", lambda cfg: ([], "frames"))  # no data needed to get there
    _invoke(["train", str(tmp_path), "--experiment-path", str(tmp_path / "run"), "--device", "cuda",
             "--precision", "fp32", "--seed", "4"])
    assert runtime_starts == [{"device": "cuda", "precision": "fp32", "seed": 4, "distributed": True,
                               "backend": "auto"}]  # nccl on CUDA: DistributedDataParallel averages gradients


@pytest.mark.parametrize("command", ["extract-features", "extract-frames"])
def test_bulk_commands_place_their_processes_through_the_runtime(runtime_starts, tmp_path, command):
    _invoke([command, str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out")])
    assert len(runtime_starts) == 1 and runtime_starts[0]["distributed"]


def test_evaluate_starts_a_runtime_for_one_process(runtime_starts, tmp_path):
    (tmp_path / "features.hdf5").write_bytes(b"")
    _invoke(["evaluate", "--dataset", "FIVR-5K", "--dataset-hdf5", str(tmp_path / "features.hdf5")])
    assert len(runtime_starts) == 1 and not runtime_starts[0]["distributed"]  # evaluate never ran under torchrun
