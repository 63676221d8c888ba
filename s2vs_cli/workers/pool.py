"""Run a streaming job over many tasks in worker processes, and take its output as messages.

A job is a module-level generator function: given one task it yields payloads (chunks of frames,
a result). Each worker talks to this process over its own pipe: it is sent one task at a time and
sends back every payload. No lock is shared between workers, so a worker that dies (a decoder crash
takes the whole process) costs only its current task, reported as failed, and a new worker takes
its place. A reader thread moves messages into a bounded queue: when the consumer is slow, the
workers wait instead of filling memory. With ``workers=0`` the job runs in the calling process.

Workers are started with ``spawn``: they do not inherit the parent's threads or CUDA state.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import S2VSError

Job = Callable[[Any], Iterable[Any]]
_END = object()  # the reader thread's last message


@dataclass(frozen=True)
class Message:
    """One event of one task: kind is "item" (a payload), "done" or "error" (payload: the reason)."""

    key: Any
    kind: str
    payload: Any = None


def failure_reason(error: BaseException) -> str:
    """A one-line reason for a failed task: our own errors as they read, anything else with its type."""
    if isinstance(error, S2VSError):
        text = getattr(error, "reason", None) or str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(str(text).split())


def run_tasks(job: Job, tasks: Iterable[tuple[Any, Any]], workers: int, queue_size: int = 32,
              idle_timeout: float | None = None) -> Iterator[Message | None]:
    """Run `job(task)` for every (key, task) and yield its messages as they come.

    Yields None when `idle_timeout` seconds pass without a message, so the caller can do other work.
    Closing the iterator early stops the workers.
    """
    if workers <= 0:
        yield from _run_inline(job, tasks)
    else:
        yield from _Pool(job, list(tasks), workers, queue_size).messages(idle_timeout)


def _run_inline(job: Job, tasks: Iterable[tuple[Any, Any]]) -> Iterator[Message]:
    for key, task in tasks:
        try:
            for payload in job(task):
                yield Message(key, "item", payload)
        except Exception as error:  # noqa: BLE001 - one bad task must not end the run
            yield Message(key, "error", failure_reason(error))
        else:
            yield Message(key, "done")


def _worker_main(job: Job, connection: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    while True:
        task = connection.recv()
        if task is None:
            return
        try:
            for payload in job(task):
                connection.send(("item", payload))
        except Exception as error:  # noqa: BLE001 - reported to the parent as this task's failure
            connection.send(("error", failure_reason(error)))
        else:
            connection.send(("done", None))


class _Pool:
    """Worker processes fed one task at a time, read by one thread into a bounded queue."""

    def __init__(self, job: Job, tasks: list[tuple[Any, Any]], workers: int, queue_size: int):
        self.job = job
        self.pending = deque(tasks)
        self.context = multiprocessing.get_context("spawn")
        self.output: queue.Queue = queue.Queue(maxsize=max(queue_size, 2))
        self.stopping = threading.Event()
        self.workers: dict[Connection, tuple[Any, Any]] = {}  # connection -> (process, key of its task)
        for _ in range(min(workers, max(len(tasks), 1))):
            self._start_worker()

    def _start_worker(self) -> None:
        """Start a worker and give it a task; with no task left there is nothing to start."""
        if not self.pending:
            return
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(self.job, theirs), daemon=True)
        process.start()
        theirs.close()
        self.workers[ours] = (process, None)
        self._dispatch(ours)

    def _dispatch(self, connection: Connection) -> None:
        """Send the next task, or tell the worker to finish."""
        process, _ = self.workers[connection]
        if self.pending:
            key, task = self.pending.popleft()
            self.workers[connection] = (process, key)
            connection.send(task)
        else:
            connection.send(None)
            connection.close()
            process.join()
            del self.workers[connection]

    def _put(self, item: Any) -> None:
        while not self.stopping.is_set():
            try:
                self.output.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _read(self) -> None:
        """Reader thread: move every worker's messages to the queue; replace workers that die."""
        try:
            while self.workers and not self.stopping.is_set():
                for connection in wait(list(self.workers), timeout=0.2):
                    process, key = self.workers[connection]
                    try:
                        kind, payload = connection.recv()
                    except (EOFError, OSError):
                        process.join()
                        del self.workers[connection]
                        code = process.exitcode
                        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                        if key is not None:
                            self._put(Message(key, "error", f"the decoding process crashed ({how})"))
                        self._start_worker()
                        continue
                    self._put(Message(key, kind, payload))
                    if kind in ("done", "error"):
                        self._dispatch(connection)
        except BaseException as error:  # noqa: BLE001 - surfaced in the consumer's thread
            self._put(error)
        finally:
            self._put(_END)

    def messages(self, idle_timeout: float | None) -> Iterator[Message | None]:
        reader = threading.Thread(target=self._read, name="s2vs-task-reader", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = self.output.get(timeout=idle_timeout)
                except queue.Empty:
                    yield None
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stopping.set()
            reader.join(timeout=5)
            for process, _ in list(self.workers.values()):
                if process.is_alive():
                    process.terminate()
                process.join(timeout=5)


def default_workers() -> int:
    """One worker process (decoding, data loading) per CPU core this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))
