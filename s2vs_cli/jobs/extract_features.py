"""Bulk feature extraction: many videos -> one HDF5 feature file, fast, resumable, losing nothing.

Worker processes read inputs through their frame source (media/source.py: video files, frame folders)
and stream frames back a few at a time; this process packs frames of several videos into full batches
for the runtime's extractor and hands each finished video to the part writer (see storage/parts.py for
why parts). Under torchrun every rank takes every world_size-th video of the list and rank 0 merges all
parts at the end. A video that fails is recorded with its reason and the run goes on.
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..datasets.video_inputs import select_inputs
from ..downloads import package_version
from ..errors import ConfigError, FeatureStoreError, S2VSError
from ..media.inputs import collect_inputs
from ..media.source import VideoInput
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..storage.parts import PartWriter, complete_parts, merge_parts, output_lock, parts_dir_for
from ..storage.ids import nesting_clashes, nesting_reason
from ..storage.bookkeeping import (ExtractionOptions, ExtractionSummary, Failure, RunCounts, failures_path,
                                    write_failures)
from ..storage.store import StoreIdentity, read_identity, stored_ids
from ..workers.pool import default_workers, run_tasks
from ..workers.decoding import FRAMES_PER_MESSAGE, decode_job

if TYPE_CHECKING:
    from ..datasets.benchmark import Benchmark
    from ..config import ExtractFeaturesConfig
    from ..models.extractor import RegionExtractor

IDLE_FLUSH = 0.05      # seconds without new frames before a partial batch is run anyway


@dataclass
class _Video:
    """A video between its first decoded frame and its write."""

    item: VideoInput
    timestamps: list[np.ndarray] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    queued: int = 0          # frames waiting for the model
    info: dict | None = None  # set when decoding finished


class _BatchPacker:
    """Frames of many videos -> model batches of `frames_per_batch`, and the features back to their videos."""

    def __init__(self, runtime: Runtime, options: ExtractionOptions):
        self.extractor: RegionExtractor = runtime.extractor
        self.runtime, self.batch = runtime, options.frames_per_batch
        self.blocks: deque[tuple[int, np.ndarray]] = deque()  # (video key, frames) in arrival order
        self.queued = 0
        self.model_seconds = 0.0

    def add(self, key: int, frames: np.ndarray) -> None:
        self.blocks.append((key, frames))
        self.queued += len(frames)

    def drop(self, key: int) -> None:
        """Forget the queued frames of a video that failed."""
        kept = deque(block for block in self.blocks if block[0] != key)
        self.queued = sum(len(frames) for _, frames in kept)
        self.blocks = kept

    def run(self, videos: dict[int, _Video]) -> int:
        """Extract up to one batch of queued frames; returns how many frames went through."""
        size, parts, owners = 0, [], []
        while self.blocks and size < self.batch:
            key, frames = self.blocks.popleft()
            take = min(len(frames), self.batch - size)
            if take < len(frames):
                self.blocks.appendleft((key, frames[take:]))
                frames = frames[:take]
            parts.append(frames)
            owners.append((key, take))
            size += take
        if not size:
            return 0
        self.queued -= size
        started = time.perf_counter()
        batch = torch.from_numpy(np.concatenate(parts))
        features = self.extractor.extract(batch, self.batch, precision=self.runtime.precision,
                                          compiled=self.runtime.compile)
        features = features.float().cpu().numpy()
        self.model_seconds += time.perf_counter() - started
        offset = 0
        for key, count in owners:
            video = videos[key]
            video.features.append(features[offset:offset + count])
            video.queued -= count
            offset += count
        return size


def extract_to_writer(items: Sequence[VideoInput], runtime: Runtime, options: ExtractionOptions,
                      writer: PartWriter, progress: Progress = SILENT,
                      ) -> tuple[RunCounts, list[Failure], dict[str, list[str]], dict[str, dict], float]:
    """Extract every item into `writer`; returns the final counts, failures, warnings, the damaged videos written
    (id -> what was lost; with `options.strict` they are failures instead) and the model seconds."""
    counts = RunCounts(total=len(items))
    failures: list[Failure] = []
    warnings: dict[str, list[str]] = {}
    damaged: dict[str, dict] = {}
    videos: dict[int, _Video] = {}
    packer = _BatchPacker(runtime, options)
    job = functools.partial(decode_job, fps=options.fps, threads=options.decode_threads)
    tasks = [(key, (str(item.path), options.loader)) for key, item in enumerate(items)]
    # Enough queued messages to fill a few batches while the model is busy.
    queue_size = max(8, 3 * options.frames_per_batch // FRAMES_PER_MESSAGE + 2 * options.workers)

    def report() -> None:
        progress.update(counts.done, failed=counts.failed, frames=counts.frames)

    def fail(key: int, reason: str) -> None:
        videos.pop(key, None)
        packer.drop(key)
        failures.append(Failure(items[key].video_id, str(items[key].path), reason))
        counts.failed += 1
        report()

    def finish_ready() -> None:
        for key in [k for k, v in videos.items() if v.info is not None and v.queued == 0]:
            if not videos[key].features:
                fail(key, "no frames could be read")
                continue
            if not all(np.isfinite(block).all() for block in videos[key].features):
                fail(key, "the model gave NaN or infinite features")
                continue
            info = videos[key].info
            # lost_seconds: the source ended this much before the duration it states (files before it: read as 0).
            lost = {"lost_frames": int(info["lost_frames"]), "lost_seconds": float(info.get("lost_seconds", 0.0))}
            if info.get("damaged"):
                if options.strict:  # named with what it lost, and redone (not skipped) by the next run
                    fail(key, f"damaged: {'; '.join(info['warnings'])} (--strict)")
                    continue
                damaged[items[key].video_id] = lost | {"warning": "; ".join(info["warnings"])}
            video = videos.pop(key)
            features = np.concatenate(video.features)
            timestamps = np.concatenate(video.timestamps)
            # Absolute: dedup and `s2vs info` read the source's facts from wherever they are run.
            attrs = {"fps": float(options.fps), "source": str(Path(video.item.path).absolute())} | lost
            if info["warnings"]:
                attrs["warnings"] = "; ".join(info["warnings"])
                warnings[video.item.video_id] = list(info["warnings"])
            writer.add(video.item.video_id, features, timestamps, **attrs)
            counts.done += 1
            report()

    for message in run_tasks(job, tasks, options.workers, queue_size, idle_timeout=IDLE_FLUSH):
        if message is None:  # decoding is behind: run what we have rather than wait
            counts.frames += packer.run(videos)
            finish_ready()
            continue
        key = message.key
        if message.kind == "item":
            kind, *payload = message.payload
            video = videos.setdefault(key, _Video(items[key]))
            if kind == "frames":
                frames, times = payload
                video.timestamps.append(times)
                video.queued += len(frames)
                packer.add(key, frames)
            else:
                video.info = payload[0]
        elif message.kind == "error":
            fail(key, message.payload)
        while packer.queued >= options.frames_per_batch:
            counts.frames += packer.run(videos)
        finish_ready()
    while packer.queued:
        counts.frames += packer.run(videos)
    finish_ready()
    return counts, failures, warnings, damaged, packer.model_seconds


def run_extract_features(cfg: ExtractFeaturesConfig, paths: Sequence[str] | None, output: str | Path,
                         runtime: Runtime, progress: Progress = SILENT) -> ExtractionSummary:
    """`s2vs extract-features` as one call: find the inputs `cfg` names, load the runtime's extractor,
    extract (resuming) into `output`. Raises S2VSError when named videos are missing (unless skipped)."""
    items, missing = select_inputs(paths, cfg, progress)
    runtime.load_extractor(cfg.backbone_weights, cfg.pca, cfg.backbone)
    options = ExtractionOptions(fps=cfg.fps, loader=cfg.loader, frames_per_batch=cfg.frames_per_batch,
                                workers=default_workers() if cfg.workers is None else cfg.workers, dtype=cfg.dtype,
                                compression=None if cfg.compression == "none" else cfg.compression,
                                overwrite=cfg.overwrite, strict=cfg.strict)
    return extract_features(items, output, runtime, options, missing=missing, progress=progress)


def extract_features(items: Sequence[VideoInput], output: str | Path, runtime: Runtime, options: ExtractionOptions,
                     *, missing: Sequence[Failure] = (), progress: Progress = SILENT) -> ExtractionSummary:
    """Extract `items` with `runtime.extractor` into the HDF5 file `output`, resuming earlier work.

    With `options.overwrite` the named videos are recomputed and replace their old features; the
    other videos of the file stay, unless the file was made differently (then it is replaced and
    `summary.replaced` says how it differed). Every rank of `runtime.group` calls this with the same
    arguments. `missing` are inputs already known to be absent; they are reported as failures.
    """
    if runtime.extractor is None:
        raise S2VSError("no extractor loaded: call runtime.load_extractor(...) first")
    group, output, version = runtime.group, Path(output), package_version()
    identity = StoreIdentity.of(runtime.extractor, options.fps, options.loader, options.dtype)
    if output.exists() and not output.is_file():
        raise FeatureStoreError(f"{output}: exists and is not a file; give the HDF5 file to write")
    with contextlib.ExitStack() as cleanup:
        if group.is_main:  # one run at a time; what a killed one left is cleared before any rank writes
            cleanup.enter_context(output_lock(output))
        group.barrier()
        parts_dir = parts_dir_for(output)

        earlier = ([output] if output.exists() else []) + complete_parts(parts_dir)
        replaced = _made_differently(earlier, identity, options.overwrite)
        kept = [path for path in earlier if path not in replaced]
        held = stored_ids(kept)  # --overwrite replaces these ids' videos, and keeps the others
        _refuse_nesting(items, held, output)
        done = set() if options.overwrite else held
        shard = list(items)[group.rank::group.world_size]
        todo = [item for item in shard if item.video_id not in done]

        started = time.perf_counter()
        if todo:  # a re-run with nothing to do shows no empty bar
            progress.stage("extracting", len(todo), unit="videos")
        with PartWriter(parts_dir, identity, version, options.dtype, options.compression, options.part_videos,
                        options.part_seconds, prefix=f"r{group.rank}-{os.getpid()}-{int(time.time())}-{uuid.uuid4().hex[:6]}") as writer:
            counts, failures, warnings, damaged, model_seconds = extract_to_writer(todo, runtime, options, writer,
                                                                                   progress)
        seconds = time.perf_counter() - started

        group.barrier()
        new_parts = [Path(p) for rank_parts in group.gather([str(p) for p in writer.written]) for p in rank_parts]
        all_failures = [f for rank_failures in group.gather(failures) for f in rank_failures] + list(missing)
        summary = ExtractionSummary(requested=len(items) + len(missing),
                                    already_done=len(items) - sum(group.gather(len(todo))),
                                    written=sum(group.gather(counts.done)), frames=counts.frames,
                                    failures=all_failures, warnings=warnings, seconds=seconds,
                                    model_seconds=model_seconds, output=str(output),
                                    damaged={k: v for rank_damaged in group.gather(damaged)
                                             for k, v in rank_damaged.items()})
        if group.is_main:
            _merge_run(summary, output, new_parts, kept, replaced, identity, version, progress)
        group.barrier()
    return summary


def extract_benchmark_features(benchmark: Benchmark, dataset_path: str, pattern: str | None, output: str | Path,
                               runtime: Runtime, options: ExtractionOptions,
                               progress: Progress = SILENT) -> ExtractionSummary:
    """Extract the benchmark's videos found under `dataset_path` (read by `options.loader`) into `output`
    with `runtime.extractor`, resuming -> the extraction's summary (evaluate, and training's evaluator).

    Videos that are absent or fail to decode are simply not in the file: scoring counts them as missing.
    """
    found = collect_inputs(dataset_path=dataset_path, pattern=pattern, ids=benchmark.video_ids(),
                           loader=options.loader)
    missing = [Failure(video_id, where, reason) for video_id, where, reason in found.missing]
    return extract_features(found.inputs, output, runtime, options, missing=missing, progress=progress)


def _merge_run(summary: ExtractionSummary, output: Path, new_parts: list[Path], kept: list[Path],
               replaced: dict[Path, str], identity: StoreIdentity, version: str, progress: Progress) -> None:
    """Rank 0: merge this run's parts (and older ones) into `output`, record failures, remove the parts."""
    summary.replaced = "; ".join(replaced.values()) or None
    old_parts = [path for path in kept if path != output]
    if new_parts or old_parts or replaced or not output.exists():
        progress.stage(f"merging {len(new_parts) + len(old_parts)} part file(s)", unit="videos")
        # Replacing: this run's videos win over older copies; resuming: there are none.
        merged = merge_parts(output, new_parts + old_parts, identity, version, keep_existing=output in kept,
                             parts_first=True, progress=progress, drop_unreadable_parts=True)
        summary.videos_in_output = merged.videos
        # Left out of the output, so the next run redoes them; never silently.
        summary.failures += [Failure(d.video_id, str(d.path), f"{d.reason}; the next run redoes it" if d.redone
                                     else d.reason) for d in merged.damaged]
        for part in new_parts + old_parts + [p for p in replaced if p != output]:
            part.unlink(missing_ok=True)
    else:
        summary.videos_in_output = len(stored_ids([output]))
    write_failures(failures_path(output), summary.failures)
    summary.failures_file = str(failures_path(output)) if summary.failures else None


def _made_differently(paths: Sequence[Path], identity: StoreIdentity, overwrite: bool) -> dict[Path, str]:
    """Earlier files made with another model, dtype or fps -> how they differ; an error unless overwriting."""
    replaced = {}
    for path in paths:
        found = read_identity(path)
        differences = identity.differences(found) if found is not None else []
        if differences and not overwrite:
            raise FeatureStoreError(f"{path} holds features made differently: {'; '.join(differences)}; "
                                    "use --overwrite to replace them, or another output file")
        if differences:
            replaced[path] = f"{path.name}: {'; '.join(differences)}"
    return replaced


def _refuse_nesting(items: Sequence[VideoInput], held: set[str], output: Path) -> None:
    """Before any work: ids such as 'a' and 'a/b' cannot share `output` (storage/ids.py), whether both are
    new or one is already stored (merging them would fail and lose the run's work)."""
    clashes = nesting_clashes((item.video_id for item in items), held)
    if not clashes:
        return
    first, second = clashes[0]
    paths = {item.video_id: item.path for item in items}
    where = f"already in {output}" if first in held else f"also named ({paths[first]})"
    more = f" (and {len(clashes) - 1} more such ids)" if len(clashes) > 1 else ""
    raise ConfigError(f"{paths[second]}: its video id '{second}' cannot be stored beside '{first}', {where}: "
                      f"{nesting_reason(first, second)}; rename one, or write to another output file{more}")
