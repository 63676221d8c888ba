"""The review page in a real headless Chromium: what a person sees and does (documents built by hand).

Every test keeps a screenshot in tests/artifacts/ (printed; `pytest -s` shows the paths) and checks that the
browser's console has no errors.
"""
from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media import write_video
from s2vs_cli.report.images import PendingImage, ReportImage
from s2vs_cli.report.page import write_page

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE_SCRIPT = "</script><script>window.__pwned=1</script>"
HOSTILE_IMG = "<img src=x onerror=window.__pwned=1>"
QUOTES = "it's a \"quoted\" name"


# --------------------------------------------------------------------------- inputs made here
def _frames(seconds: float, rate: int, hue: int) -> list[np.ndarray]:
    """A gradient background with a bright block sweeping across: something to look at in the players."""
    height, width = 64, 96
    rows, cols = np.mgrid[0:height, 0:width]
    frames = []
    for k in range(int(seconds * rate)):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = (cols * 2 + hue) % 256
        image[..., 1] = (rows * 3 + k * 2) % 256
        image[..., 2] = hue
        left = (k * 3) % (width - 16)
        image[20:44, left:left + 16] = 255
        frames.append(image)
    return frames


def _image(width: int, height: int, fmt: str, seed: int) -> ReportImage:
    rng = np.random.default_rng(seed)
    if fmt == "png":  # a heatmap-like picture: a bright diagonal band over noise
        values = rng.random((height, width)) * 0.4
        for r in range(height):
            values[r, max(0, r * width // height - 3):r * width // height + 3] = 1.0
        pixels = np.stack([values * 250, 60 + values * 160, 120 - values * 80], axis=-1).astype(np.uint8)
    else:
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG" if fmt == "png" else "JPEG")
    return ReportImage(buffer.getvalue(), fmt)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Two real H.264 MP4 clips: a 12-s query and a 20-s target (10 fps, 96x64)."""
    folder = tmp_path_factory.mktemp("clips")
    return {"query": write_video(folder / "query.mp4", _frames(12, 10, 40), rate=10),
            "target": write_video(folder / "target.mp4", _frames(20, 10, 200), rate=10)}


def _match(query_start, query_end, target_start, target_end, score, thumbs=True) -> dict:
    pending = PendingImage()
    pending.image = _image(160, 90, "jpg", int(query_start * 10) + 1)
    return {"query_start": query_start, "query_end": query_end, "target_start": target_start,
            "target_end": target_end, "score": score,
            "query_thumb": _image(160, 90, "jpg", int(query_start * 10)) if thumbs else None,
            "target_thumb": pending if thumbs else None}


def _heatmap() -> dict:
    return {"image": _image(80, 48, "png", 7), "query_extent": [0.0, 12.0], "target_extent": [0.0, 20.0],
            "value_range": [-0.2, 0.9]}


def _pair(target: str, video: Path | None, similarity: float, matches: list[dict], rank: int | None = 1,
          **extra) -> dict:
    pair = {"rank": rank, "target": target, "target_video": video, "target_duration": 20.0,
            "similarity": similarity, "normalized": None, "verdict": None, "threshold": None, "label": None,
            "flag": None, "matches": matches}
    pair.update(extra)
    if "heatmap" not in pair:
        pair["heatmap"] = _heatmap() if matches else None
    return pair


def _query(query_id: str, video: Path | None, hits: list[dict], **extra) -> dict:
    query = {"id": query_id, "video": video, "duration": 12.0, "ap": None, "error": None, "hits": hits,
             "hits_note": None}
    query.update(extra)
    return query


def _document(kind: str, title: str, queries: list[dict], **extra) -> dict:
    document = {"format": "s2vs-review/1", "kind": kind, "title": title, "created": "2025-01-02T03:04:05",
                "tool": "s2vs 0.1.0", "model": "s2vs_dns (random)", "extractor": "resnet50 (random)",
                "random_weights": True, "notes": [], "metrics": [], "queries": queries}
    document.update(extra)
    return document


THREE_MATCHES = [(2.0, 6.0, 4.0, 12.0, 0.91), (7.5, 9.0, 14.0, 15.5, 0.74), (10.0, 11.5, 1.0, 2.5, 0.52)]


def _compare_document(clips: dict[str, Path]) -> dict:
    pair = _pair("target.mp4", clips["target"], 0.8731, [_match(*m) for m in THREE_MATCHES],
                 verdict="copy", threshold=0.5)
    return _document("compare", "query.mp4 vs target.mp4", [_query("query.mp4", clips["query"], [pair])],
                     notes=["similarities normalized by an example note"])


# --------------------------------------------------------------------------- the browser side
def _open(browser, page: Path) -> None:
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.resolve().as_uri())
    _wait(browser, "return document.querySelectorAll('#app > header').length === 1", "the page to build")


def _wait(browser, script: str, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def _screenshot(browser, name: str) -> Path:
    """Keep a screenshot of the whole page (1280 px wide) as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height + 140, 900), 4000))
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(1280, 900)
    print(f"screenshot: {path}")
    return path


def _count(browser, selector: str) -> int:
    return browser.execute_script("return document.querySelectorAll(arguments[0]).length", selector)


def _wait_for_metadata(browser) -> None:
    _wait(browser, "const v = [...document.querySelectorAll('div.pair video')];"
                   "return v.length > 0 && v.every(x => x.readyState >= 1)", "video metadata")


def _player_times(browser) -> dict:
    return browser.execute_script(
        "const q = document.querySelector('video.player-query'), t = document.querySelector('video.player-target');"
        "return {query: q.currentTime, target: t.currentTime, rate: t.playbackRate, paused: q.paused};")


# --------------------------------------------------------------------------- tests
def test_compare_page_shows_the_pair_and_seeks_both_players(browser, clips, tmp_path):
    page = write_page(_compare_document(clips), tmp_path / "compare.html")
    _open(browser, page)
    assert _count(browser, "section.query") == 1
    assert _count(browser, "tr.hit") == 1
    assert browser.execute_script("return document.querySelector('div.pair').offsetHeight") > 0  # open at load
    assert _count(browser, "div.pair .match") == 3
    assert _count(browser, "div.timeline") == 2
    assert _count(browser, "div.timeline .seg") == 6
    assert _count(browser, "div.pair svg .outline") == 3
    assert browser.execute_script("return [...document.querySelectorAll('.match')].map(m => m.dataset.start)") == \
        ["2", "7.5", "10"]
    text = browser.find_element("css selector", "div.pair").text
    assert "0:02.0 – 0:06.0" in text and "0:14.0 – 0:15.5" in text and "0.873" in text
    assert "random, untrained weights" in browser.find_element("css selector", ".banner-random").text
    _wait_for_metadata(browser)

    browser.find_elements("css selector", ".match")[1].click()  # match 2: query 7.5 s, target 14.0 s
    _wait(browser, "return !document.querySelector('video.player-query').paused", "the players to start")
    times = _player_times(browser)
    assert times["query"] == pytest.approx(7.5, abs=0.5)
    assert times["target"] == pytest.approx(14.0, abs=0.5)

    browser.find_elements("css selector", ".timeline-query .seg")[0].click()  # match 1: 4 s of query → 8 s of target
    _wait(browser, "return document.querySelector('video.player-query').currentTime > 2.8",
          "the query to play into match 1")
    times = _player_times(browser)
    assert times["rate"] == pytest.approx(2.0)  # keep in step: the target runs at its length over the query's
    assert times["target"] == pytest.approx(4.0 + (times["query"] - 2.0) * 2.0, abs=0.6)
    assert browser.execute_script("return document.querySelector('.keep-in-step').checked") is True
    _screenshot(browser, "report_compare")
    assert _errors(browser) == []


def test_search_page_lists_queries_and_opens_pair_views_on_demand(browser, clips, tmp_path):
    queries = []
    for q, hits in enumerate((4, 3, 2)):
        pairs = [_pair(f"stored_{q}_{h}", clips["target"] if h == 0 else None, 0.9 - 0.15 * h,
                       [_match(*m) for m in THREE_MATCHES[:3 - h % 3]], rank=h + 1, normalized=0.5 - 0.1 * h,
                       verdict="copy" if h == 0 else "not a copy", threshold=0.6)
                 for h in range(hits)]
        queries.append(_query(f"query_{q}.mp4", clips["query"], pairs))
    queries.append(_query("broken.mp4", None, [], error="broken.mp4: cannot decode the video"))
    page = write_page(_document("search", "search: 4 queries in coll.h5", queries), tmp_path / "search.html")
    _open(browser, page)
    assert _count(browser, "section.query") == 4
    assert _count(browser, "tr.hit") == 9
    assert _count(browser, "div.pair") == 0  # built on first open only
    assert "cannot decode the video" in browser.find_element("css selector", ".query-error").text

    rows = browser.find_elements("css selector", "section.query:nth-of-type(2) tr.hit")
    rows[1].click()
    assert _count(browser, "div.pair") == 1
    assert _count(browser, "div.pair .match") == 2
    assert _count(browser, "div.pair .placeholder") == 1  # the stored video is not at hand
    rows[0].click()
    assert _count(browser, "div.pair") == 2
    _wait_for_metadata(browser)
    _screenshot(browser, "report_search")
    rows[1].click()  # closes again: hidden, not rebuilt
    assert browser.execute_script("return document.querySelectorAll('tr.pair-row:not([hidden])').length") == 1
    assert _errors(browser) == []


def test_evaluate_page_shows_metrics_ap_and_errors(browser, clips, tmp_path):
    low = _pair("positive_17", clips["target"], 0.31, [_match(*THREE_MATCHES[0])], rank=14, label="positive",
                flag="positive ranked low")
    high = _pair("negative_3", None, 0.77, [], rank=2, label="negative", flag="negative ranked high")
    queries = [_query("q1", clips["query"], [low, high], ap=0.8123, hits_note="1 positive ranked below 5"),
               _query("q2", None, [], ap=1.0)]
    metrics = [{"name": "mAP (DSVR)", "value": 0.8846, "paper": 0.892},
               {"name": "mAP (CSVR)", "value": 0.874, "paper": None}]
    page = write_page(_document("evaluate", "FIVR-5K", queries, metrics=metrics), tmp_path / "evaluate.html")
    _open(browser, page)
    table = browser.execute_script(
        "return [...document.querySelectorAll('table.metrics tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
    assert table == [["mAP (DSVR)", "0.885", "0.892", "−0.007"], ["mAP (CSVR)", "0.874", "–", ""]]
    no_paper = write_page(_document("evaluate", "custom", queries, metrics=[{"name": "mAP", "value": 0.5, "paper": None}]),
                          tmp_path / "custom.html")
    _open(browser, no_paper)  # no paper numbers for a custom set: no paper columns
    assert browser.execute_script("return [...document.querySelectorAll('table.metrics th')].map(c => c.textContent)"
                                  ) == ["metric", "s2vs", "mAP"]
    _open(browser, page)
    assert [b.text for b in browser.find_elements("css selector", ".badge-ap")] == ["AP 0.812", "AP 1.000"]
    assert _count(browser, "tr.hit") == 2
    assert "positive ranked low" in browser.find_elements("css selector", "tr.hit")[0].text
    browser.find_elements("css selector", "tr.hit")[1].click()
    assert "No copied part located." in browser.find_element("css selector", "div.pair").text
    assert "No frame-to-frame map" in browser.find_element("css selector", "div.pair").text
    browser.find_elements("css selector", "tr.hit")[0].click()
    _wait_for_metadata(browser)
    _screenshot(browser, "report_evaluate")
    assert _errors(browser) == []


def test_hostile_ids_titles_and_file_names_show_literally(browser, clips, tmp_path):
    odd = tmp_path / "videos" / f"{HOSTILE_IMG} {QUOTES} #1?.mp4"
    odd.parent.mkdir()
    shutil.copy(clips["query"], odd)
    pair = _pair(HOSTILE_IMG + QUOTES, odd, 0.5, [_match(*THREE_MATCHES[0])])
    document = _document("compare", HOSTILE_SCRIPT + " vs " + QUOTES,
                         [_query(HOSTILE_SCRIPT, odd, [pair], hits_note="a & b \u2028 c <!-- d")],
                         notes=[HOSTILE_IMG, HOSTILE_SCRIPT])
    page = write_page(document, tmp_path / "hostile.html")
    _open(browser, page)
    assert browser.execute_script("return window.__pwned") is None
    assert browser.execute_script("return document.scripts.length") == 2
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    text = browser.execute_script("return document.body.textContent")
    for literal in (HOSTILE_SCRIPT, HOSTILE_IMG, QUOTES, "a & b \u2028 c <!-- d"):
        assert literal in text
    assert browser.title.startswith(HOSTILE_SCRIPT)
    _wait_for_metadata(browser)  # the odd file name reaches the browser as a working URL
    _screenshot(browser, "report_hostile")
    assert _errors(browser) == []


def test_page_still_works_after_its_folder_is_moved(browser, clips, tmp_path):
    first = tmp_path / "first"
    (first / "videos").mkdir(parents=True)
    copies = {kind: Path(shutil.copy(clip, first / "videos" / clip.name)) for kind, clip in clips.items()}
    write_page(_compare_document(copies), first / "report.html")
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    _open(browser, moved / "report.html")
    _wait(browser, "return [...document.images].every(i => i.complete)", "the images")
    widths = browser.execute_script("return [...document.images].map(i => i.naturalWidth)")
    assert len(widths) == 7 and all(w > 0 for w in widths)  # six thumbnails and the heatmap
    _wait_for_metadata(browser)
    assert browser.execute_script("return document.querySelector('video.player-target').duration") == \
        pytest.approx(20.0, abs=0.2)
    assert _errors(browser) == []


def test_page_without_videos_shows_placeholders(browser, tmp_path):
    pair = _pair("target.mp4", None, 0.66, [_match(*m, thumbs=False) for m in THREE_MATCHES])
    page = write_page(_document("compare", "no videos", [_query("query.mp4", None, [pair])], random_weights=False),
                      tmp_path / "novideo.html")
    _open(browser, page)
    assert _count(browser, "video") == 0
    assert _count(browser, "div.pair .placeholder") == 2
    assert _count(browser, ".banner-random") == 0
    assert _count(browser, ".thumb-missing") == 6
    browser.find_elements("css selector", ".match")[2].click()  # nothing to play: still no error
    assert "Match 3 of 3" in browser.find_element("css selector", ".sync-status").text
    _screenshot(browser, "report_no_videos")
    assert _errors(browser) == []


def test_large_search_page_loads_fast_and_shows_long_times(browser, tmp_path):
    """100 queries x 20 hits over 2-hour videos: the page builds hit rows only, pair views on demand."""
    heatmap = {**_heatmap(), "query_extent": [0.0, 7384.5], "target_extent": [0.0, 7200.0]}
    matches = [{"query_start": 3700.0 + k * 60, "query_end": 3730.0 + k * 60, "target_start": 100.0 + k * 60,
                "target_end": 130.0 + k * 60, "score": 0.8, "query_thumb": None, "target_thumb": None}
               for k in range(5)]
    queries = [_query(f"q{q:03d}", None, [_pair(f"t{q:03d}_{h:02d}", None, 0.9 - h * 0.01, matches, rank=h + 1,
                                                target_duration=7200.0, heatmap=heatmap) for h in range(20)],
                      duration=7384.5) for q in range(100)]
    started = time.monotonic()
    page = write_page(_document("search", "large", queries), tmp_path / "large.html")
    written = time.monotonic() - started
    assert len(list((tmp_path / "large_files").iterdir())) == 1  # one heatmap image, shared
    started = time.monotonic()
    _open(browser, page)
    loaded = time.monotonic() - started
    assert _count(browser, "section.query") == 100 and _count(browser, "tr.hit") == 2000
    assert _count(browser, "div.pair") == 0
    browser.execute_script("document.querySelectorAll('tr.hit')[25].click()")
    assert _count(browser, "div.pair .match") == 5
    ends = [e.text for e in browser.find_elements("css selector", "div.pair .timeline-end")]
    assert ends == ["2:03:04.5", "2:00:00.0"]
    assert "1:01:40.0 – 1:02:10.0" in browser.find_element("css selector", "div.pair .match").text
    print(f"large page: written in {written:.2f} s, loaded in {loaded:.2f} s")
    assert written < 5 and loaded < 5
    assert _errors(browser) == []
