"""Learn the PCA whitening of region vectors (the library side of `s2vs fit-pca`).

As the original does: the scatter matrix XᵀX of the centred region vectors (not divided by N; only
the 1e-7 epsilon of the whitening notices), then a symmetric eigendecomposition. The result is saved
in the published layout, a dict of exactly three tensors — `mean` [D], `d` [D] (eigenvalues) and `V`
[D, D] (eigenvectors as columns) — which `models.loading.load_whitening` reads and `PCAWhitening.from_eigen`
turns into a projection (it keeps the largest eigenvalues itself).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic import OutputWriteError
from ..errors import ConfigError, S2VSError
from ..models.backbone_registry import backbone_class
from ..models.checkpoints import save_atomically
from ..models.whitening import RANDOM_SOURCE_KEY
from ..progress import SILENT, Progress
from ..storage.store import FeatureStore, made_with_random_weights

if TYPE_CHECKING:
    from ..runtime import Runtime

# Rows converted to float64 at a time: a float16 [N, 3840] batch becomes ~32 MiB of float64 per
# block, never one N×3840 float64 copy. Throughput barely depends on it beyond ~512 rows.
BLOCK_BYTES = 32 << 20
# sample_plan draws inside blocks of this many consecutive vectors (bounds its memory, see below).
SAMPLE_BLOCK = 1 << 20


class ScatterAccumulator:
    """Running count, sum and scatter of [N, D] vectors in float64, fed batch by batch."""

    def __init__(self, dims: int, device: str | torch.device = "cpu"):
        if dims < 1:
            raise ValueError(f"dims must be positive, got {dims}")
        self.dims = dims
        self.device = torch.device(device)
        self.count = 0
        self._block_rows = max(1, BLOCK_BYTES // (8 * dims))
        # Moments are taken about a fixed shift c (the first block's mean), not about 0: region
        # vectors are non-negative with a large mean, and Σxxᵀ − Nμμᵀ would cancel most of its digits.
        self._shift: torch.Tensor | None = None
        self._sum = torch.zeros(dims, dtype=torch.float64, device=self.device)  # Σ (x − c)
        self._outer = torch.zeros(dims, dims, dtype=torch.float64, device=self.device)  # Σ (x − c)(x − c)ᵀ

    def add(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Accumulate a batch of vectors [N, D] (numpy, memory-mapped too, or torch; any float dtype)."""
        if not isinstance(vectors, torch.Tensor):
            vectors = np.asarray(vectors)  # kept as numpy: a memmap is read block by block, never whole
        if vectors.ndim != 2 or vectors.shape[1] != self.dims:
            raise ValueError(f"vectors must have shape [N, {self.dims}], got {tuple(vectors.shape)}")
        if not (vectors.is_floating_point() if isinstance(vectors, torch.Tensor)
                else np.issubdtype(vectors.dtype, np.floating)):
            raise ValueError(f"vectors must be floating point, got {vectors.dtype}")
        blocks = [vectors[i:i + self._block_rows] for i in range(0, vectors.shape[0], self._block_rows)]
        # Check every block before touching the totals, so a bad batch leaves them as they were.
        if not all(_finite(b) for b in blocks):
            raise ValueError("vectors contain NaN or infinite values")
        for block in blocks:
            b = _float64(block, self.device)
            if self._shift is None:
                self._shift = b.mean(0)
            b = b - self._shift
            self._sum += b.sum(0)
            self._outer.addmm_(b.T, b)
            self.count += b.shape[0]

    def mean(self) -> torch.Tensor:
        """The mean vector [D], float64 on the CPU."""
        if self.count == 0:
            raise ValueError("no vectors were added")
        return (self._shift + self._sum / self.count).cpu()

    def scatter(self) -> torch.Tensor:
        """Σ (x − μ)(x − μ)ᵀ over all vectors [D, D] (not divided by N), float64 on the CPU."""
        if self.count == 0:
            raise ValueError("no vectors were added")
        offset = self._sum / self.count  # μ − c, small by construction
        s = self._outer - self.count * torch.outer(offset, offset)
        return ((s + s.T) / 2).cpu()  # exactly symmetric, as eigh assumes


def _finite(block: np.ndarray | torch.Tensor) -> bool:
    return bool(torch.isfinite(block).all() if isinstance(block, torch.Tensor) else np.isfinite(block).all())


def _float64(block: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(block, torch.Tensor):
        return block.to(device, torch.float64)
    # np.array copies: from_numpy of a read-only memmap slice would warn (and alias the file).
    return torch.from_numpy(np.array(block, dtype=np.float64)).to(device)


def fit_whitening(acc: ScatterAccumulator) -> dict[str, torch.Tensor]:
    """Eigendecompose the scatter -> {'mean', 'd', 'V'} float32, eigenvalues descending, V's columns with them."""
    if acc.count < 2:
        raise ValueError(f"PCA needs at least 2 vectors, got {acc.count}")
    d, V = torch.linalg.eigh(acc.scatter())  # float64; ascending eigenvalues
    d, V = d.flip(0), V.flip(1)
    # The scatter is positive semi-definite: negative eigenvalues are rounding, and one below −1e-7
    # would make from_eigen's sqrt(d + eps) NaN.
    d = d.clamp(min=0)
    # eigh's signs are arbitrary (they vary with the LAPACK build): make each column's largest entry
    # positive, so the same data gives the same file. Whitening does not depend on the signs.
    rows = V.abs().argmax(0)
    V = V * torch.sign(V[rows, torch.arange(V.shape[1])])
    # float32 like the published file: from_eigen works in float64 but PCAWhitening stores float32.
    return {"mean": acc.mean().float().contiguous(), "d": d.float().contiguous(), "V": V.float().contiguous()}


def whitening_note(whitening: dict[str, torch.Tensor], keep: int = 512) -> str | None:
    """A one-line warning when some of the `keep` largest eigenvalues are zero (too few vectors), else None."""
    d = whitening["d"].double()
    # Numerical rank as numpy's matrix_rank counts it, with the float64 eps of the eigendecomposition.
    tol = float(d.max()) * d.numel() * torch.finfo(torch.float64).eps
    rank = int((d > tol).sum())
    kept = min(keep, d.numel())
    if rank >= kept:
        return None
    return (f"{kept - rank} of the {kept} kept eigenvalues are zero: the vectors span only {rank} dimensions "
            f"(too few vectors, or duplicates), and whitening turns the others into noise; fit on more vectors")


def sample_plan(lengths: Sequence[int], max_vectors: int, seed: int) -> list[np.ndarray]:
    """Which vectors of each video to use: at most `max_vectors`, uniform without replacement over all of them.

    `lengths[i]` is the number of vectors of video i (frames × regions); the result holds one sorted
    int64 array of flat indices into each video's vectors (possibly empty). Deterministic for a seed.
    """
    if max_vectors < 1:
        raise ValueError(f"max_vectors must be positive, got {max_vectors}")
    sizes = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (sizes < 0).any():
        raise ValueError("video lengths must not be negative")
    total = int(sizes.sum())
    if total <= max_vectors:
        return [np.arange(n, dtype=np.int64) for n in sizes]
    chosen = _distinct_sorted(np.random.default_rng(seed), total, max_vectors)
    ends = np.cumsum(sizes)
    bounds = np.searchsorted(chosen, ends)  # chosen[bounds[i-1]:bounds[i]] fall in video i
    starts = ends - sizes
    begin = np.concatenate(([0], bounds[:-1]))
    return [chosen[b:e] - s for b, e, s in zip(begin.tolist(), bounds.tolist(), starts.tolist())]


def _distinct_sorted(rng: np.random.Generator, total: int, k: int) -> np.ndarray:
    """k distinct integers drawn uniformly from [0, total), sorted, in O(k + SAMPLE_BLOCK) memory."""
    # numpy's choice(total, k, replace=False) alone would permute all `total` indices when total is
    # under ~20 k (160 MB for k = 1e6). So: split [0, total) into blocks, draw how many of the k fall
    # in each block (multivariate hypergeometric: exactly their law under uniform sampling), then a
    # uniform subset of that size inside each block.
    if total >= 10**9:  # past numpy's hypergeometric limit; there choice uses Floyd's O(k) algorithm anyway
        return np.sort(rng.choice(total, k, replace=False, shuffle=False)).astype(np.int64)
    sizes = np.full(-(-total // SAMPLE_BLOCK), SAMPLE_BLOCK, dtype=np.int64)
    sizes[-1] = total - SAMPLE_BLOCK * (len(sizes) - 1)
    counts = rng.multivariate_hypergeometric(sizes, k, method="marginals")
    parts = [np.sort(rng.choice(int(size), int(count), replace=False, shuffle=False)) + block * SAMPLE_BLOCK
             for block, (size, count) in enumerate(zip(sizes, counts)) if count]
    return np.concatenate(parts).astype(np.int64)


def save_whitening(path: str | Path, whitening: dict[str, torch.Tensor], random_weights: bool = False) -> None:
    """Write {'mean', 'd', 'V'} with torch.save, atomically; S2VSError with one line when it cannot.

    `random_weights`: fitted on features of seeded random weights; the file then says so (RANDOM_SOURCE_KEY)."""
    path = Path(path)
    dims = whitening["mean"].shape[0] if "mean" in whitening else 0
    expected = {"mean": (dims,), "d": (dims,), "V": (dims, dims)}
    if set(whitening) != set(expected) or any(tuple(whitening[k].shape) != s for k, s in expected.items()):
        shapes = {k: tuple(v.shape) for k, v in whitening.items()}
        raise ValueError(f"whitening must hold exactly mean [D], d [D] and V [D, D], got {shapes}")
    # Clones: torch.save would write a view's whole storage (load_whitening reads mean, d, V and the flag only).
    payload = {k: whitening[k].detach().cpu().contiguous().clone() for k in expected}
    if random_weights:  # only then: a whitening of real features keeps the published layout exactly
        payload[RANDOM_SOURCE_KEY] = True
    try:
        save_atomically(path, payload)  # serialised in memory: a full disk names the file, not torch's zip writer
    except OutputWriteError as e:
        raise S2VSError(f"{path}: cannot write whitening: {e.reason}") from None
    except OSError as e:  # the folder cannot be made
        raise S2VSError(f"{path}: cannot write whitening: {e.strerror or e}") from None


def fit_from_feature_files(paths: Sequence[str | Path], max_vectors: int = 1_000_000, seed: int = 0,
                           device: str | torch.device = "cpu",
                           progress: Progress = SILENT) -> tuple[dict[str, torch.Tensor], int]:
    """Fit the whitening on un-whitened region vectors stored in feature files -> (whitening, vectors used).

    At most `max_vectors` vectors, drawn uniformly over all videos of all files (seeded); the files are
    read one video at a time, so memory stays bounded. Refuses files that say they are whitened.
    `progress` counts videos read, in a stage "reading vectors".
    """
    videos: list[tuple[Path, str]] = []
    lengths: list[int] = []
    dims = None
    for path in paths:
        with FeatureStore(path) as store:
            if store.identity is not None and store.identity.whitening != "none":
                raise S2VSError(f"{path}: features are already whitened ({store.identity.whitening}); "
                                "extract them with --pca none to fit a whitening")
            for video_id in store.ids():
                frames, regions, size = store.shape(video_id)
                if dims is not None and size != dims:
                    raise S2VSError(f"{path}: '{video_id}' has {size}-d features, others {dims}-d")
                dims = size
                videos.append((Path(path), video_id))
                lengths.append(frames * regions)
    if dims is None:
        raise S2VSError("no videos in the given feature files")
    plan = sample_plan(lengths, max_vectors, seed)
    accumulator = ScatterAccumulator(dims, device)
    handles: dict[Path, FeatureStore] = {}
    progress.stage("reading vectors", len(videos), "videos")
    try:
        for done, ((path, video_id), chosen) in enumerate(zip(videos, plan), start=1):
            if len(chosen):
                store = handles.get(path) or handles.setdefault(path, FeatureStore(path))
                features = store.read_features(video_id)
                accumulator.add(features.reshape(-1, dims)[chosen])
            progress.update(done, len(videos))
    finally:
        for store in handles.values():
            store.close()
    if accumulator.count < 2:
        raise S2VSError(f"only {accumulator.count} region vector(s) in the given files; a whitening needs many more")
    return fit_whitening(accumulator), accumulator.count


@dataclass
class FittedWhitening:
    """What `fit_pca` wrote: where, from how many vectors of how many dimensions, and what to warn about."""

    output: str
    vectors: int
    dims: int
    dims_note: str | None   # the vectors are not the default backbone's, so --pca will not take the file
    warning: str | None     # see whitening_note
    random_weights: bool = False  # fitted on features of seeded random weights: the file says so


def fit_pca(features: Sequence[str | Path], output: str | Path, runtime: Runtime, max_vectors: int = 1_000_000,
            seed: int = 0, progress: Progress = SILENT, backbone: str = "resnet50_l3imac") -> FittedWhitening:
    """`s2vs fit-pca`: fit the whitening of stored region vectors (of `backbone`, a registered name) on the
    runtime's device and save it."""
    if max_vectors < 2:
        raise ConfigError(f"--max-vectors must be at least 2, got {max_vectors}")
    whitening, used = fit_from_feature_files(features, max_vectors, seed, runtime.device, progress)
    dims = whitening["mean"].numel()
    backbone = backbone_class(backbone)
    dims_note = None
    if dims != backbone.region_dims:
        dims_note = f"{dims}-d vectors: --pca expects {backbone.region_dims}-d ({backbone.description}) whitenings"
    random = any(made_with_random_weights(path) for path in features)
    save_whitening(output, whitening, random_weights=random)
    return FittedWhitening(str(output), used, dims, dims_note, whitening_note(whitening, keep=512), random)
