"""metrics.jsonl: one JSON row per logged training step (losses, learning rate, speed, evaluations)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import OutputWriteError, write_text_atomically
from ..json_file import parse_json

if TYPE_CHECKING:
    from .step import StepLosses


def metrics_row(step: int, losses: StepLosses, lr: float, clips_per_second: float, frames_per_second: float,
                evaluation: dict[str, float]) -> dict:
    """The row logged for `step`: its loss terms (StepLosses), learning rate, speed and evaluation (eval_*)."""
    row = {"step": step, **{k: round(v, 6) for k, v in vars(losses).items()}, "lr": lr,
           "clips_per_second": round(clips_per_second, 3), "frames_per_second": round(frames_per_second, 2)}
    row.update({f"eval_{k}": v for k, v in evaluation.items()})
    return row


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop the metrics.jsonl rows after `step` (all of them for a fresh start), atomically."""
    rows = [row for row in read_metrics(path) if row.get("step", 0) <= step] if step else []
    if not path.exists():
        return
    write_text_atomically(path, "".join(json.dumps(row) + "\n" for row in rows))


def append_row(path: Path, row: dict) -> None:
    """Add one row to a metrics.jsonl file (appended, not rewritten: a row cut short by a kill or a full disk
    is the last line, which read_metrics skips); OutputWriteError naming it when the disk refuses."""
    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
    except OSError as e:
        raise OutputWriteError(path, e.strerror or str(e)) from None


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl file (empty when there is none); a line cut short by a kill is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = parse_json(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
