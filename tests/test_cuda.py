"""On a CUDA machine (benchmarks/gpu_check.sh runs these): the runtime's choices and the models agree with the CPU."""
from __future__ import annotations

import pytest
import torch

from s2vs_cli.runtime import Runtime
from s2vs_cli.scoring.many_targets import video_similarities

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def runtimes():
    """The same seeded random models on the CPU and on the GPU."""
    pair = []
    for device in ("cpu", "cuda"):
        runtime = Runtime.start(device, "fp32", seed=0)
        runtime.load_models("random", "random", "random")
        pair.append(runtime)
    return pair


def test_auto_takes_the_first_gpu_in_half_precision():
    runtime = Runtime.start("auto")
    assert str(runtime.device) == "cuda:0" and runtime.precision == "fp16"
    assert torch.cuda.current_device() == 0


def test_extractor_on_the_gpu_matches_the_cpu(runtimes):
    cpu, gpu = runtimes
    frames = torch.randint(0, 256, (6, 224, 224, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    expected = cpu.extractor.extract(frames, frames_per_batch=4)
    on_gpu = gpu.extractor.extract(frames.cuda(), frames_per_batch=4)
    assert on_gpu.device.type == "cuda" and on_gpu.shape == expected.shape == (6, 9, 512)
    torch.testing.assert_close(on_gpu.cpu(), expected, atol=2e-3, rtol=1e-3)
    half = gpu.extractor.extract(frames.cuda(), frames_per_batch=4, precision="fp16")
    cosine = torch.nn.functional.cosine_similarity(half.cpu().flatten(1), expected.flatten(1))
    assert cosine.min() > 0.99


def test_visil_on_the_gpu_matches_the_cpu(runtimes):
    cpu, gpu = runtimes
    generator = torch.Generator().manual_seed(2)
    query = torch.nn.functional.normalize(torch.randn(20, 9, 512, generator=generator), dim=-1)
    targets = [torch.nn.functional.normalize(torch.randn(t, 9, 512, generator=generator), dim=-1) for t in (8, 33, 70)]
    with torch.no_grad():
        indexed = [cpu.network.index_video(x) for x in (query, *targets)]
        expected = video_similarities(cpu.network, indexed[0], indexed[1:])
        indexed = [gpu.network.index_video(x.cuda()) for x in (query, *targets)]
        on_gpu = video_similarities(gpu.network, indexed[0], indexed[1:])
    torch.testing.assert_close(torch.as_tensor(on_gpu).cpu().float(), torch.as_tensor(expected).float(),
                               atol=1e-4, rtol=1e-4)
