"""Atomic writes: the previous file survives any failure, temporary names always fit, leftovers are cleaned."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from s2vs_cli.atomic import (OutputWriteError, atomic_write, remove_stale_temporaries, temporary_sibling,
                             write_bytes_atomically, write_text_atomically)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("new, half")
            raise RuntimeError("stopped")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_full_disk_is_one_line_naming_the_target(tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    target.write_text("good page")

    def full(descriptor):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputWriteError, match=r"page\.html: cannot write \(No space left on device\)"):
        write_text_atomically(target, "new page")
    assert target.read_text() == "good page"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_temporary_names_fit_whatever_the_name(tmp_path):
    long_name = "é" * 120 + ".json"  # 245 bytes
    temporary = temporary_sibling(tmp_path / long_name)
    assert len(temporary.name.encode()) < 255 and temporary.parent == tmp_path
    write_bytes_atomically(tmp_path / long_name, b"x" * 10)
    assert (tmp_path / long_name).read_bytes() == b"x" * 10


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".index.faiss.{dead_pid}-0123abcd.s2vs-tmp"
    live = tmp_path / f".index.faiss.{os.getpid()}-0123abcd.s2vs-tmp"
    other = tmp_path / "index.faiss"
    for path in (stale, live, other):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_new_file_is_written_whole_and_never_over_another(tmp_path):
    from s2vs_cli.atomic import write_new_file

    write_new_file(tmp_path / "00000.jpg", b"\xff\xd8" + bytes(1000))
    assert (tmp_path / "00000.jpg").read_bytes() == b"\xff\xd8" + bytes(1000)
    with pytest.raises(OutputWriteError, match="00000.jpg: cannot write"):
        write_new_file(tmp_path / "00000.jpg", b"other")
    assert (tmp_path / "00000.jpg").stat().st_size == 1002


def test_a_temporary_name_with_a_newline_is_still_recognised(tmp_path):
    from s2vs_cli.atomic import temporary_writer

    assert temporary_writer(temporary_sibling(tmp_path / "two\nlines.json").name) == os.getpid()
