"""The videos a command's input options name: paths, folders, lists and patterns, or a benchmark's videos
(--dataset); what extract-features and extract-frames read."""
from __future__ import annotations

from collections.abc import Sequence

from ..config import InputOptions
from ..errors import ConfigError, S2VSError
from ..media.inputs import collect_inputs
from ..media.source import VideoInput, source_class
from ..progress import SILENT, Progress
from ..storage.bookkeeping import Failure
from .registry import load_benchmark

SHOWN = 5  # missing videos named in one error line


def select_inputs(paths: Sequence[str] | None, cfg: InputOptions,
                  progress: Progress = SILENT) -> tuple[list[VideoInput], list[Failure]]:
    """The videos that paths, or the dataset options of `cfg`, name -> (found, missing as failures).

    Named videos that are missing stop the run here (S2VSError: an input cannot be used) unless
    `cfg.skip_missing`; then they are returned, to be listed with the failures.
    """
    source = source_class(cfg.loader)
    ids = None
    if cfg.dataset is not None:
        if cfg.dataset_path is None:
            raise ConfigError("--dataset names the videos; add --dataset-path DIR to say where they are")
        ids = load_benchmark(cfg.dataset, annotations=cfg.annotations, progress=progress).video_ids()
    elif cfg.annotations is not None:
        raise ConfigError("--annotations goes with --dataset NAME")
    found = collect_inputs(paths or [], cfg.loader, cfg.dataset_path, cfg.pattern, cfg.list, ids)
    if found.missing and not cfg.skip_missing:
        shown = "; ".join(f"'{video_id}' ({reason}: {where})" for video_id, where, reason in found.missing[:SHOWN])
        more = f" and {len(found.missing) - SHOWN} more" if len(found.missing) > SHOWN else ""
        raise S2VSError(f"{len(found.missing)} of {len(found.missing) + len(found.inputs)} videos not found: "
                        f"{shown}{more}; fix the paths or pass --skip-missing to go on without them")
    if not found.inputs and not found.missing:
        raise ConfigError(f"no videos found in the given inputs{source.hint}")
    if found.ignored:
        progress.note(f"{len(found.ignored)} entries in the given folders are not {source.noun}s and were left "
                      f"out, e.g. {found.ignored[0]}")
    return found.inputs, [Failure(*missing) for missing in found.missing]
