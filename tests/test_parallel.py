"""Worker pool: messages per task, failures isolated, a crashed worker costs only its task."""
from __future__ import annotations

import os
import signal

import pytest

from s2vs_cli.errors import VideoDecodeError
from s2vs_cli.workers.pool import failure_reason, run_tasks


def counting_job(task):
    """Yield `task` items; task 'bad' raises a decode error, 'boom' an unexpected one, 'kill' dies."""
    if task == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    for i in range(3):
        if task == "bad" and i == 1:
            raise VideoDecodeError("bad.mp4", "truncated file")
        if task == "boom":
            raise RuntimeError("unexpected")
        yield (task, i)


def _collect(workers):
    tasks = list(enumerate(["a", "bad", "b", "boom", "c"] + (["kill", "d"] if workers else [])))
    events = {}
    for message in run_tasks(counting_job, tasks, workers):
        events.setdefault(message.key, []).append((message.kind, message.payload))
    return events


@pytest.mark.parametrize("workers", [0, 2])
def test_every_task_ends_once_and_failures_are_isolated(workers):
    events = _collect(workers)
    assert events[0] == [("item", ("a", 0)), ("item", ("a", 1)), ("item", ("a", 2)), ("done", None)]
    assert events[1] == [("item", ("bad", 0)), ("error", "truncated file")]
    assert events[3] == [("error", "RuntimeError: unexpected")]
    assert events[4][-1] == ("done", None)
    if workers:
        assert events[5] == [("error", "the decoding process crashed (signal 9)")]
        assert events[6][-1] == ("done", None)  # a new worker took over


def test_failure_reason_is_one_line():
    assert failure_reason(ValueError("two\nlines")) == "ValueError: two lines"
