"""`s2vs compare --report` and `s2vs report` end to end: the page's embedded document and its images."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.report.images import ReportImage
from test_report_document import second_shown, write_colour_video

# Random weights, features only, 4 frames a video: the CPU extracts 8 frames in all.
RANDOM = ["--backbone-weights", "random", "--pca", "random", "--features-only", "--precision", "fp32", "--fps", "0.5"]
runner = CliRunner()


def page_data(page: Path) -> dict:
    """The document embedded in a written page."""
    html = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S)
    assert found, "no embedded review data"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> dict:
    """One `s2vs compare a.mp4 b.mp4 --report out.html --json` run (random weights, offline), from its folder:
    b.mp4 shows a.mp4's seconds 2-7 first, then other colours."""
    folder = tmp_path_factory.mktemp("compare-report")
    write_colour_video(folder / "a.mp4", seconds=8)
    write_colour_video(folder / "b.mp4", seconds=8, first=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S2VS_HOME", str(folder / "s2vs-cache"))
        patch.setenv("S2VS_OFFLINE", "1")
        patch.setattr(torch.hub, "get_dir", lambda: str(folder / "hub"))
        patch.chdir(folder)
        result = runner.invoke(app, ["compare", "a.mp4", "b.mp4", *RANDOM, "--report", "out.html", "--json"])
    assert result.exit_code == 0, result.output
    (folder / "saved.json").write_text(result.stdout)
    return {"folder": folder, "summary": json.loads(result.stdout)}


def test_compare_report_holds_the_pair_its_matches_and_images(compared):
    folder, summary = compared["folder"], compared["summary"]
    assert summary["report"] == "out.html"
    data = page_data(folder / "out.html")
    assert data["kind"] == "compare" and data["title"] == "a.mp4 vs b.mp4" and data["random_weights"] is True
    (query,) = data["queries"]
    (pair,) = query["hits"]
    assert (query["id"], query["video"], pair["target"], pair["target_video"]) == ("a.mp4", "a.mp4", "b.mp4", "b.mp4")
    assert query["duration"] == pytest.approx(8, abs=0.1) and pair["target_duration"] == pytest.approx(8, abs=0.1)
    assert pair["similarity"] == pytest.approx(summary["similarity"])
    assert [(m["query_start"], m["target_start"]) for m in pair["matches"]] == \
        [(m["query_start"], m["target_start"]) for m in summary["matches"]]
    assert [(m["query_start"], m["query_end"], m["target_start"], m["target_end"]) for m in pair["matches"]] == \
        [(2.0, 8.0, 0.0, 6.0)]  # the seconds the two share
    heatmap = pair["heatmap"]
    assert (folder / heatmap["image"]).is_file() and heatmap["image"].startswith("out_files/")
    assert heatmap["query_extent"] == [0.0, 8.0] and heatmap["target_extent"] == [0.0, 8.0]
    (match,) = pair["matches"]
    shown = [second_shown(ReportImage((folder / match[side]).read_bytes(), "jpg"))
             for side in ("query_thumb", "target_thumb")]
    assert shown == [2, 2]  # a.mp4 at 0:02 and b.mp4 at 0:00 both show a's third colour


def test_report_of_saved_compare_json(compared, monkeypatch):
    folder = compared["folder"]
    monkeypatch.chdir(folder)
    result = runner.invoke(app, ["report", "saved.json", "-o", "again.html"])
    assert result.exit_code == 0, result.output
    matches = len(compared["summary"]["matches"])
    data = page_data(folder / "again.html")
    thumbs = {m[side] for m in data["queries"][0]["hits"][0]["matches"] for side in ("query_thumb", "target_thumb")}
    assert result.stdout.strip() == (f"again.html: 1 query, 1 pair, {_count(matches, 'copied part')}, "
                                     f"{_count(len(thumbs), 'image')}")
    (pair,) = data["queries"][0]["hits"]
    assert pair["heatmap"] is None and any("no heatmaps" in note for note in data["notes"])
    assert len(pair["matches"]) == matches and all((folder / m["query_thumb"]).is_file() for m in pair["matches"])


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def test_compare_refuses_an_unwritable_report_before_the_work(compared, monkeypatch):
    import s2vs_cli.runtime

    def no_work(*args, **kwargs):
        raise AssertionError("the models were started before the report path was checked")

    monkeypatch.setattr(s2vs_cli.runtime.Runtime, "start", no_work)
    monkeypatch.chdir(compared["folder"])
    result = runner.invoke(app, ["compare", "a.mp4", "b.mp4", *RANDOM, "--report", "no/such/folder/out.html"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no/such/folder/out.html: cannot write here")


def test_report_command_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("odd.json").write_text("{not json")
    bad = runner.invoke(app, ["report", "odd.json", "-o", "out.html"])
    assert bad.exit_code == 2 and bad.output.strip().startswith("error: odd.json: not valid JSON")
    no_output = runner.invoke(app, ["report", "odd.json"])
    assert no_output.exit_code == 2 and "--output OUT.html" in no_output.output
    assert not Path("out.html").exists()
