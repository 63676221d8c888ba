"""How the library reports long work: one small protocol that the CLI draws with rich and a script may ignore.

A library function that runs long takes `progress: Progress = SILENT`. It names each stage with `stage()`
(what is being counted, and how many there are when known), counts through it with `update()`, reports the
bytes of a download with `download()` and says anything a person should know with `note()`. Subclass
`Progress` to show it elsewhere (a log file, a notebook); every method does nothing by default.
"""
from __future__ import annotations


class Progress:
    """Receives the library's progress reports; the base class ignores them all."""

    def stage(self, name: str, total: int | None = None, unit: str = "items") -> None:
        """A new stage begins: `name` says what happens, `total` how many `unit`s it counts (None: unknown)."""

    def update(self, done: int, total: int | None = None, *, failed: int = 0, frames: int = 0,
               status: str = "") -> None:
        """`done` units of the current stage finished (`failed` more failed; `frames` decoded so far);
        `total` corrects the stage's total; `status` is a short line about the latest one (a loss, a name)."""

    def download(self, done: int, total: int | None) -> None:
        """`done` bytes of a download arrived, of `total` (None when the server does not say)."""

    def note(self, message: str) -> None:
        """Something a person should read (a remark, not an error: errors are raised)."""


SILENT = Progress()


class CallbackProgress(Progress):
    """Adapts plain functions to the protocol: `CallbackProgress(update=lambda done, total: ...)`."""

    def __init__(self, update=None, stage=None, download=None, note=None):
        self._update, self._stage, self._download, self._note = update, stage, download, note
        self.total: int | None = None

    def stage(self, name: str, total: int | None = None, unit: str = "items") -> None:
        self.total = total
        if self._stage is not None:
            self._stage(name)

    def update(self, done: int, total: int | None = None, *, failed: int = 0, frames: int = 0,
               status: str = "") -> None:
        if total is not None:
            self.total = total
        if self._update is not None:
            self._update(done, self.total)

    def download(self, done: int, total: int | None) -> None:
        if self._download is not None:
            self._download(done, total)

    def note(self, message: str) -> None:
        if self._note is not None:
            self._note(message)
