"""Issue 25, cases 9 and 15: every output is written whole or not at all (a real full disk leaves the previous
file as it was), a rerun report keeps only its own images, ids are printed visibly on the terminal and are
neutralised in the CSVs a spreadsheet opens, reading back exactly."""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.errors import S2VSError
from s2vs_cli.report.images import ReportImage
from s2vs_cli.report.page import write_page
from test_search import collection, write_store

runner = CliRunner()


def _png(seed: int, side: int = 8) -> ReportImage:
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return ReportImage(buffer.getvalue(), "png")


def _page_document(seeds: list[int]) -> dict:
    return {"title": "t", "images": [_png(seed) for seed in seeds]}


def _image_name(image: ReportImage) -> str:
    return f"{hashlib.sha1(image.data).hexdigest()[:16]}.{image.suffix}"


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of `folder` until at most `leave` bytes are free (a real ENOSPC, not an injected one)."""
    descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while (free := os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize) > leave:
            try:
                os.write(descriptor, bytes(min(free - leave, 1 << 16)))
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    finally:
        os.close(descriptor)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- case 9: every output written whole, on a real full disk -------------------------------------------------

def _write_results(path: Path) -> None:
    from s2vs_cli.cli.common import write_results

    write_results(str(path), {"hits": list(range(2000))})


def _write_thresholds(path: Path) -> None:
    from s2vs_cli.scoring.calibration import ScoreIdentity, Thresholds

    Thresholds(threshold=0.5, target_precision=0.9, precision=0.91, recall=0.8,
               identity=ScoreIdentity("m", "b", "none", 1.0), normalization=None,
               calibration_set={"name": "x" * 5000}, version="t").save(path)


def _write_similarities(path: Path) -> None:
    from s2vs_cli.scoring.retrieval import save_similarities

    save_similarities(path, {f"q{i}": {f"t{j}": 0.5 for j in range(200)} for i in range(20)})


def _write_segments(path: Path) -> None:
    from s2vs_cli.datasets.vsc import CopiedSegment, write_segments

    write_segments(path, [CopiedSegment("Q1", f"R{i}", 0.0, 1.0, 2.0, 3.0, 0.5) for i in range(2000)])


def _write_pairs(path: Path) -> None:
    from s2vs_cli.datasets.vsc import ScoredPair, write_pairs

    write_pairs(path, [ScoredPair("Q1", f"R{i}", 0.5) for i in range(3000)])


def _write_heatmap(path: Path) -> None:
    from s2vs_cli.report.heatmap import save_heatmap

    noise = np.random.default_rng(0).random((60, 80)).astype(np.float32)
    save_heatmap(path, noise, np.arange(60.0), np.arange(80.0))


def _write_whitening(path: Path) -> None:
    from s2vs_cli.jobs.fit_pca import save_whitening

    save_whitening(path, {"mean": torch.zeros(64), "d": torch.ones(64), "V": torch.eye(64)})


def _write_preview(path: Path) -> None:
    from s2vs_cli.training.preview import save_rows

    clip = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (4, 48, 48, 3), dtype=np.uint8))
    save_rows([clip, clip], path)


def _write_loss_plot(path: Path) -> None:
    from s2vs_cli.training.plots import save_loss_curve

    save_loss_curve(path.parent.parent / "metrics.jsonl", path)


def _write_page(path: Path) -> None:
    write_page(_page_document([10, 11, 12]), path)


WRITERS = {"results.json": _write_results, "thresholds.json": _write_thresholds, "similarities.json": _write_similarities,
           "similarities.h5": _write_similarities, "matches.csv": _write_segments, "candidates.csv": _write_pairs,
           "heatmap.png": _write_heatmap, "pca.pth": _write_whitening, "preview.png": _write_preview,
           "loss.png": _write_loss_plot, "report.html": _write_page}


@pytest.mark.parametrize("name", WRITERS)
def test_case_9_an_output_that_does_not_fit_leaves_the_previous_file_exactly(small_disk, tmp_path, name):
    """issue 25 case 9: a full disk never cuts an output over the good one; no temporary is left; one line."""
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 50)))
    target = small_disk / name
    if name == "report.html":
        write_page(_page_document([1, 2]), target)
    else:
        target.write_bytes(b"the good previous file\n" * 100)
    before = {path: path.read_bytes() for path in small_disk.rglob("*") if path.is_file()}
    _fill(small_disk)
    with pytest.raises(S2VSError) as raised:
        WRITERS[name](target)
    message = str(raised.value)
    assert "\n" not in message and str(target) in message and "No space left on device" in message, message
    (small_disk / "filler").unlink()
    assert {path: path.read_bytes() for path in small_disk.rglob("*") if path.is_file()} == before
    assert _listing(small_disk) == sorted([str(p.relative_to(small_disk)) for p in before] +
                                          (["report_files"] if name == "report.html" else []))


def test_case_9_a_page_that_does_not_fit_after_its_images_keeps_the_previous_page_and_images(small_disk):
    """issue 25 case 9: images go first and the page last; a page that fails takes its new images away again."""
    page = small_disk / "review.html"
    write_page(_page_document([1, 2]), page)
    before = {path: path.read_bytes() for path in small_disk.rglob("*") if path.is_file()}
    _fill(small_disk, leave=24 * 1024)  # room for the new images (a few hundred bytes each), not for the page
    with pytest.raises(S2VSError, match=r"review\.html: cannot write the report \(.*No space left on device"):
        write_page(_page_document([3, 4, 5]), page)
    (small_disk / "filler").unlink()
    assert {path: path.read_bytes() for path in small_disk.rglob("*") if path.is_file()} == before


def test_case_9_results_that_do_not_fit_are_one_line_exit_1_and_keep_the_old_results(small_disk, tmp_path):
    """issue 25 case 9, from the command line: `search -o RESULTS.json` and `report -o X.html` on a full disk."""
    store = tmp_path / "features.h5"
    write_store(store, collection(count=4))
    results, page = small_disk / "results.json", small_disk / "review.html"
    first = runner.invoke(app, ["search", "query", "--database", str(store), "--features-only", "-o", str(results)])
    assert first.exit_code == 0, first.output
    assert runner.invoke(app, ["report", str(results), "-o", str(page)]).exit_code == 0
    good_results, good_page = results.read_bytes(), page.read_bytes()
    _fill(small_disk)
    again = runner.invoke(app, ["search", "query", "query-copy", "--database", str(store), "--features-only",
                                "-o", str(results)])
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [f"error: {results}: cannot write results (No space left on device)"]
    report = runner.invoke(app, ["report", str(results), "-o", str(page), "--quiet"])
    assert report.exit_code == 1 and len(report.stderr.splitlines()) == 1, report.stderr
    assert report.stderr.startswith(f"error: {page}: cannot write the report (") and "No space left" in report.stderr
    (small_disk / "filler").unlink()
    assert results.read_bytes() == good_results and page.read_bytes() == good_page
    assert sorted(p.name for p in small_disk.iterdir()) == ["results.json", "review.html"]


def test_case_9_a_rerun_report_keeps_exactly_the_images_of_the_new_page(tmp_path):
    """issue 25 case 9: rerunning `--report X.html` removes its own stale images (5 became 8), and only its own."""
    page = tmp_path / "X.html"
    write_page(_page_document([1, 2, 3, 4, 5]), page)
    files = tmp_path / "X_files"
    # A user's files in the folder: kept. So is a file named like an image of ours whose bytes are not that image.
    (files / "notes.txt").write_text("mine")
    (files / "holiday.png").write_bytes(_png(99).data)
    lookalike = files / _image_name(_png(98))
    lookalike.write_bytes(_png(97).data)
    users = {"notes.txt", "holiday.png", lookalike.name}
    write_page(_page_document([4, 5, 6]), page)
    html = page.read_text(encoding="utf-8")
    kept = {_image_name(_png(seed)) for seed in (4, 5, 6)}
    assert {p.name for p in files.iterdir()} == kept | users
    assert all(f"X_files/{name}" in html for name in kept)
    assert all((files / _image_name(_png(seed))).read_bytes() == _png(seed).data for seed in (4, 5, 6))
    # An image of ours damaged in place (same size, other bytes) is written again, not reused.
    damaged = files / _image_name(_png(6))
    damaged.write_bytes(bytes(len(_png(6).data)))
    write_page(_page_document([6]), page)
    assert {p.name for p in files.iterdir()} == {_image_name(_png(6))} | users
    assert damaged.read_bytes() == _png(6).data
    # A page without images: its folder goes when nothing of the user's is in it.
    for name in users:
        (files / name).unlink()
    write_page({"title": "no images"}, page)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.html"]


# --- case 15: ids printed visibly, and neutralised in CSVs ---------------------------------------------------

HOSTILE = "\x1b[2J\x1b]0;t\x07\x9b"  # clear the screen, set the title, a C1 control (short: fits a table column)
VISIBLE = "\\x1b[2J\\x1b]0;t\\x07\\x9b"


def _no_controls(text: str) -> bool:
    return not any((ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f for c in text)


def test_case_15_printable_makes_every_control_visible():
    """issue 25 case 15: the one function the command line prints names from the data through."""
    from s2vs_cli.cli.common import terminal_safe

    assert terminal_safe(HOSTILE) == VISIBLE
    assert terminal_safe("nul\x00tab\there\nnewline\r\x7f") == "nul\\x00tab\\x09here\\x0anewline\\x0d\\x7f"
    assert terminal_safe("café [bold]x[/] ü 🎬") == "café \\[bold]x\\[/] ü 🎬"  # markup shown as typed, not applied


def test_case_15_search_and_evaluate_print_hostile_ids_visibly(tmp_path):
    """issue 25 case 15: search headings and hits, failed lines, evaluate notes and error lines."""
    videos = collection(count=3)
    videos[HOSTILE] = videos.pop("query-copy")
    store = tmp_path / "features.h5"
    write_store(store, videos)
    found = runner.invoke(app, ["search", "query", HOSTILE, "\x1b[2Jgone", "--database", str(store),
                                "--features-only"])
    assert found.exit_code == 3, found.output  # the missing query fails, the others are shown
    assert _no_controls(found.output), repr(found.output)
    assert found.stdout.count(VISIBLE) == 2  # as a heading (its own search) and as a hit (of query's)
    assert "failed: \\x1b[2Jgone" in found.stderr
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["query", "\x1b]0;pwned\x07"], "database": [HOSTILE],
                              "positives": {"query": [HOSTILE], "\x1b]0;pwned\x07": [HOSTILE]}}))
    evaluated = runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(gt),
                                    "--dataset-hdf5", str(store), "--features-only"])
    assert evaluated.exit_code == 0 and _no_controls(evaluated.output), repr(evaluated.output)
    assert "e.g. \\x1b]0;pwned\\x07" in evaluated.output
    missing = runner.invoke(app, ["search", "q", "--database", str(tmp_path / "\x1b[2J.h5")])
    assert missing.exit_code == 1 and _no_controls(missing.output) and "\\x1b[2J.h5" in missing.output


def test_case_15_compare_table_and_bulk_failures_print_names_visibly(capsys):
    """issue 25 case 15: the compare table's file names and extraction's failed lines."""
    from s2vs_cli.cli.bulk import report_failures
    from s2vs_cli.cli.compare import _render
    from s2vs_cli.storage.bookkeeping import Failure

    segment = {"query_start": 0.0, "query_end": 1.0, "target_start": 0.0, "target_end": 1.0}
    _render({"similarity": 0.5, "segment": segment, "matches": [], "frames": [2, 2], "query": f"{HOSTILE}.mp4",
             "target": "[bold]b.mp4", "model": "m", "extractor": "e", "device": "cpu", "precision": "fp32",
             "random_weights": False, "warnings": [f"{HOSTILE}: odd"]}, heatmap=f"{HOSTILE}.png")
    report_failures([Failure(HOSTILE, f"/videos/{HOSTILE}.mp4", "cannot decode")], f"{HOSTILE}.failed.tsv")
    out, err = capsys.readouterr()
    assert _no_controls(out + err), repr(out + err)
    assert f"{VISIBLE}.mp4" in out and f"{VISIBLE}.png" in out and "[bold]b.mp4" in out
    assert f"failed: {VISIBLE}: cannot decode" in err and f"warning: {VISIBLE}: odd" in err


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "'quoted", "''twice",
            "plain", "a=b", "Q-1"]


def test_case_15_csv_cells_that_could_run_as_formulas_are_quoted_and_read_back_exactly(tmp_path):
    """issue 25 case 15: --save-matches / --save-similarities CSVs (OWASP: a leading quote), round trip exact,
    scores (negative ones too) still numbers."""
    from s2vs_cli.datasets.vsc import (CopiedSegment, ScoredPair, read_pairs, read_segments, write_pairs,
                                         write_segments)

    segments = [CopiedSegment(q, r, 0.0, 1.5, 2.0, 3.5, -0.5 + i / 100)
                for i, (q, r) in enumerate(zip(FORMULAS, reversed(FORMULAS)))]
    write_segments(tmp_path / "matches.csv", segments)
    pairs = [ScoredPair(q, r, -0.25 - i) for i, (q, r) in enumerate(zip(FORMULAS, FORMULAS[1:]))]
    write_pairs(tmp_path / "candidates.csv", pairs)
    assert read_segments(tmp_path / "matches.csv") == segments
    assert read_pairs(tmp_path / "candidates.csv") == pairs
    with open(tmp_path / "matches.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    expected = {"=HYPERLINK(\"http://x\",\"y\")": "'=HYPERLINK(\"http://x\",\"y\")", "+1+1": "'+1+1", "-2": "'-2",
                "@SUM(A1)": "'@SUM(A1)", "\tTAB": "'\tTAB", "\rCR": "'\rCR", "'quoted": "''quoted",
                "''twice": "'''twice", "plain": "plain", "a=b": "a=b", "Q-1": "Q-1"}
    assert [row[0] for row in rows] == [expected[q] for q in FORMULAS]
    assert [row[6] for row in rows] == [repr(s.score) for s in segments] and rows[0][6] == "-0.5"  # not quoted
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row[:2])


def test_case_15_failed_tsv_cells_are_neutralised(tmp_path):
    """issue 25 case 15: OUTPUT.failed.tsv, which a spreadsheet opens, starts no cell with a formula."""
    from s2vs_cli.storage.bookkeeping import Failure, write_failures

    path = tmp_path / "out.h5.failed.tsv"
    write_failures(path, [Failure("=cmd|' /C calc'!A0", "-rf.mp4", "@reason"), Failure("ok", "ok.mp4", "fine")])
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows == [["video_id", "path", "reason"], ["'=cmd|' /C calc'!A0", "'-rf.mp4", "'@reason"],
                    ["ok", "ok.mp4", "fine"]]


def test_case_15_evaluate_from_saved_matches_finds_ids_that_look_like_formulas(tmp_path):
    """issue 25 case 15, end to end: matches saved with quoted ids are evaluated against the original ids."""
    from s2vs_cli.datasets.vsc import CopiedSegment, write_segments

    (tmp_path / "query_metadata.csv").write_text('video_id\n"=Q1"\n-Q2\n', encoding="utf-8")
    (tmp_path / "reference_metadata.csv").write_text("video_id\n@R1\n", encoding="utf-8")
    (tmp_path / "gt.csv").write_text('query_id,ref_id,query_start,query_end,ref_start,ref_end\n"=Q1",@R1,0,4,0,4\n')
    write_segments(tmp_path / "matches.csv", [CopiedSegment("=Q1", "@R1", 0.0, 4.0, 0.0, 4.0, 0.9),
                                              CopiedSegment("-Q2", "@R1", 0.0, 4.0, 0.0, 4.0, 0.1)])
    assert (tmp_path / "matches.csv").read_text().splitlines()[1:] == ["'=Q1,'@R1,0.0,4.0,0.0,4.0,0.9",
                                                                       "'-Q2,'@R1,0.0,4.0,0.0,4.0,0.1"]
    result = runner.invoke(app, ["evaluate", "--dataset", "VSC22", "--ground-truth", str(tmp_path / "gt.csv"),
                                 "--from-matches", str(tmp_path / "matches.csv"), "--annotations", str(tmp_path),
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["queries"], summary["database"]) == (2, 1)
    assert summary["metrics"]["matching_uAP"] == pytest.approx(1.0)
