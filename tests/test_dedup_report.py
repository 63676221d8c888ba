"""`s2vs dedup --report`: the page's document from a hand-made dedup result (every group member with its facts and
thumbnail, the keeper marked, every pair with its matches, the links between groups, groups of one as videos in no
group, a missing source, a source read from the feature file), the written HTML, and the page in a real headless
Chromium (thumbnails and facts shown; groups numbered as the result numbers them; a match clicked seeks both players
to its times). Its marks and decisions.json: test_dedup_report_marks.py."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.report.dedup_review import COVERAGE_NOTE, THUMBNAIL_AT, dedup_document, write_dedup_report
from s2vs_cli.report.images import ReportImage
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity
from test_report_cli import page_data
from test_report_document import second_shown, write_colour_video

IDENTITY = StoreIdentity("test", "test", 1.0, 8, dtype="float32")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE = "<img src=x onerror=window.__pwned=1>"


def _facts(path: Path | str, duration: float | None, size: int | None) -> dict:
    known = duration is not None
    return {"duration": duration, "width": 64 if known else None, "height": 48 if known else None,
            "fps": 10.0 if known else None, "bitrate": 41_200 if known else None, "size": size, "source": str(path)}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    return hand_made(tmp_path_factory.mktemp("dedup-report"))


def hand_made(folder: Path) -> dict:
    """In `folder`: clips a (10 s), b (10 s, a's copy), c (6 s: a's seconds 2-8), e (8 s); d's source is gone; only
    x's feature file records its source. Group #0: a (keep) and b; group #1: c (keep) and d; #2: e alone, #3: x
    alone (groups of one, as dedup writes a video that only contains or overlaps others). Links: a contains c
    (#0-#1), b overlaps d (#0-#1), e overlaps x (#2-#3), c overlaps x (#1-#3: listed after e-x, so x's links come
    unsorted)."""
    (folder / "videos").mkdir()
    clip = {name: write_colour_video(folder / "videos" / f"{name}.mp4", seconds=seconds, first=first)
            for name, seconds, first in (("a", 10, 0), ("b", 10, 0), ("c", 6, 2), ("e", 8, 5), ("x", 8, 6))}
    store = folder / "features.h5"
    parts = folder / "features.h5.parts"
    with PartWriter(parts, IDENTITY, "test", dtype="float32") as writer:
        for name in ("a", "x"):
            writer.add(name, np.full((4, 1, 8), 8 ** -0.5, np.float32), np.arange(4.0), source=str(clip[name]))
    assert merge_parts(store, writer.written, IDENTITY, "test").added == 2
    gone = folder / "videos" / "gone" / "d.mp4"
    result = {
        "groups": [
            {"members": ["a", "b"], "keep": "a", "links": [1],
             "facts": {"a": _facts(clip["a"], 10.0, 52_000), "b": _facts(clip["b"], 10.0, 2_480_000)}},
            {"members": ["c", "d"], "keep": "c", "links": [3, 0],
             "facts": {"c": _facts(clip["c"], 6.0, 31_000), "d": _facts(gone, None, None)}},
            {"members": ["e"], "keep": "e", "links": [3]},
            {"members": ["x"], "keep": "x", "links": [2, 1]},
        ],
        "pairs": [
            {"a": "a", "b": "b", "similarity": 0.97, "relation": "duplicate", "coverage": {"a": 1.0, "b": 1.0},
             "matches": [{"a_start": 0.0, "a_end": 10.0, "b_start": 0.0, "b_end": 10.0, "score": 0.97}]},
            {"a": "c", "b": "d", "similarity": 0.91, "relation": "duplicate", "coverage": {"a": 0.95, "b": 0.9},
             "matches": [{"a_start": 0.0, "a_end": 6.0, "b_start": 1.0, "b_end": 7.0, "score": 0.9}]},
            {"a": "a", "b": "c", "similarity": 0.74, "relation": "contains", "coverage": {"a": 0.6, "b": 1.0},
             "container": "a", "matches": [
                 {"a_start": 2.0, "a_end": 5.0, "b_start": 0.0, "b_end": 3.0, "score": 0.81},
                 {"a_start": 6.0, "a_end": 8.0, "b_start": 4.0, "b_end": 6.0, "score": 0.77}]},
            {"a": "b", "b": "d", "similarity": 0.42, "relation": "overlap", "coverage": {"a": 0.3, "b": 0.35},
             "matches": [{"a_start": 7.0, "a_end": 10.0, "b_start": 0.0, "b_end": 3.0, "score": 0.5}]},
            {"a": "e", "b": "x", "similarity": 0.38, "relation": "overlap", "coverage": {"a": 0.25, "b": 0.25},
             "matches": [{"a_start": 1.0, "a_end": 3.0, "b_start": 0.0, "b_end": 2.0, "score": 0.4}]},
            {"a": "c", "b": "x", "similarity": 0.33, "relation": "overlap", "coverage": {"a": 0.4, "b": 0.3},
             "matches": [{"a_start": 3.0, "a_end": 5.0, "b_start": 5.0, "b_end": 7.0, "score": 0.35}]},
        ],
        "settings": {"keep": "resolution", "features_only": True, "min_similarity": 0.3, "label": HOSTILE,
                     "keep_common_frames": False},
        "random_weights": True,
    }
    return {"folder": folder, "clip": clip, "store": store, "gone": gone, "result": result}


@pytest.fixture(scope="module")
def document(made) -> dict:
    return dedup_document(made["result"], [made["store"]])


def test_document_holds_every_member_with_facts_thumbnail_and_keeper(made, document):
    assert document["kind"] == "dedup" and document["random_weights"] is True
    # Groups of one are no groups of duplicates: counted apart, and their keeper is no suggestion.
    assert document["title"] == "dedup: 2 groups of duplicates, 6 pairs in features.h5"
    assert document["counts"] == {"groups": 2, "videos": 4, "removable": 2, "single": 2, "pairs": 6,
                                  "duplicate": 2, "contains": 1, "overlap": 3, "links": 4}
    assert document["settings"] == made["result"]["settings"]
    members = {m["id"]: m for group in document["groups"] for m in group["members"]}
    assert [[m["id"] for m in g["members"]] for g in document["groups"]] == [["a", "b"], ["c", "d"], ["e"], ["x"]]
    # Numbered as the result's links, the terminal's table and groups.csv number them (from 0); links sorted.
    assert [(g["number"], g["keep"], g["single"], g["links"]) for g in document["groups"]] == [
        (0, "a", False, [1]), (1, "c", False, [0, 3]), (2, None, True, [3]), (3, None, True, [1, 2])]
    assert [m["id"] for m in members.values() if m["keep"]] == ["a", "c"]
    assert members["b"]["facts"] == {"duration": 10.0, "width": 64, "height": 48, "fps": 10.0, "bitrate": 41_200,
                                     "size": 2_480_000}
    assert members["a"]["video"] == made["clip"]["a"] and members["a"]["source"] == str(made["clip"]["a"])
    # Each thumbnail is halfway through its video: second 5 of a (colour 5), second 3 of c (which starts at 2).
    assert THUMBNAIL_AT == 0.5
    assert second_shown(members["a"]["thumb"].image) == 5 and second_shown(members["c"]["thumb"].image) == (2 + 3)
    assert isinstance(members["b"]["thumb"].image, ReportImage)
    # d's source is gone: no file, no thumbnail, its path kept for the placeholder, and a note names it.
    assert (members["d"]["video"], members["d"]["thumb"], members["d"]["source"]) == (None, None, str(made["gone"]))
    assert members["d"]["facts"]["duration"] is None
    assert "2 videos not at hand (1 with no source recorded): d, e; their cards and players show the path " \
        "recorded" in document["notes"]
    assert any("features only" in note for note in document["notes"])
    # Boilerplate left out: coverage is of the time left in matching, which the page says (a real run's duplicate
    # showed "a 80%" with matches spanning 8 of its 14 s: the 4 s intro was left out).
    assert COVERAGE_NOTE in document["notes"] and COVERAGE_NOTE.startswith("coverage: the share of each video's time")
    kept = dedup_document({**made["result"], "settings": {"keep_common_frames": True}, "pairs": [], "groups": []})
    assert COVERAGE_NOTE not in kept["notes"]


def test_document_holds_every_pair_its_matches_and_the_links(made, document):
    pairs = document["pairs"]
    assert [(p["a"], p["target"], p["relation"]) for p in pairs] == [
        ("a", "b", "duplicate"), ("c", "d", "duplicate"), ("a", "c", "contains"), ("b", "d", "overlap"),
        ("e", "x", "overlap"), ("c", "x", "overlap")]
    assert [g["pairs"] for g in document["groups"]] == [[0], [1], [], []]
    assert document["links"] == [2, 3, 4, 5]
    assert [p["groups"] for p in pairs] == [[0, 0], [1, 1], [0, 1], [0, 1], [2, 3], [1, 3]]
    contains = pairs[2]
    assert (contains["similarity"], contains["container"], contains["coverage"]) == (0.74, "a", {"a": 0.6, "b": 1.0})
    assert [(m["query_start"], m["query_end"], m["target_start"], m["target_end"], m["score"])
            for m in contains["matches"]] == [(2.0, 5.0, 0.0, 3.0, 0.81), (6.0, 8.0, 4.0, 6.0, 0.77)]
    assert (contains["a_video"], contains["target_video"]) == (made["clip"]["a"], made["clip"]["c"])
    assert (contains["a_duration"], contains["target_duration"]) == (10.0, 6.0)
    assert all(m["query_thumb"] is None and m["target_thumb"] is None for p in pairs for m in p["matches"])
    # The missing d: no video, its recorded path for the player's placeholder.
    assert (pairs[1]["target_video"], pairs[1]["target_source"]) == (None, str(made["gone"]))
    # x has no facts: its source comes from the feature file, its length from the file itself.
    assert pairs[4]["target_video"] == made["clip"]["x"] and pairs[4]["target_source"] is None
    assert pairs[4]["target_duration"] == pytest.approx(8.0, abs=0.1)
    assert pairs[4]["a_video"] is None and pairs[4]["a_source"] is None  # e: neither facts nor a store record


def test_written_page_is_well_formed_and_inlines_the_dedup_script(made, tmp_path):
    page = write_dedup_report(tmp_path / "out" / "dups.html", made["result"], [made["store"]])
    html = page.read_text(encoding="utf-8")
    assert html.count("</script>") == 2 and html.count("<script") == 2
    assert "pages.dedup = function" in html and "function pairView" in html and ".member.keeper" in html
    assert html.index("pages.dedup = function") < html.index("function pairView")  # registered before the build
    assert "@DATA@" not in html and "/*@JS@*/" not in html and "/*@CSS@*/" not in html
    assert not re.search(r"\b(src|href)=\"?https?:", html)
    data = page_data(page)
    thumbs = [m["thumb"] for g in data["groups"] for m in g["members"]]
    assert thumbs[3] is None and thumbs[4] is None and all(t.startswith("dups_files/") for t in thumbs[:3] + thumbs[5:])
    assert all((tmp_path / "out" / t).is_file() for t in thumbs[:3] + thumbs[5:])
    assert data["pairs"][0]["a_video"] == "../../" + made["clip"]["a"].relative_to(made["folder"].parent).as_posix()
    # Other kinds do not carry the dedup script.
    from s2vs_cli.report.page import write_page
    plain = write_page({"kind": "search", "title": "t"}, tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "pages.dedup" not in plain and ".member.keeper" not in plain


def test_store_that_cannot_be_read_is_a_note(made, tmp_path):
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    document = dedup_document(made["result"], [tmp_path / "broken.h5"])
    assert any(note.startswith("sources not read: ") and "broken.h5" in note for note in document["notes"])
    assert document["pairs"][4]["target_video"] is None  # x's source was only in the feature file


def test_saved_dedup_results_make_the_page_through_s2vs_report(made, tmp_path):
    """`s2vs report duplicates.json -o OUT.html --videos DIR`: the saved result's page (no feature file); --videos
    finds by id the videos whose source was not recorded (e, x), not one whose id has no file there (d)."""
    saved = tmp_path / "duplicates.json"
    saved.write_text(json.dumps(made["result"]))
    out = tmp_path / "out.html"
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(out), "--videos", str(made["folder"] / "videos")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{out}: 2 groups, 6 pairs, 7 copied parts, ")  # groups of one not counted
    data = page_data(out)
    assert data["kind"] == "dedup" and [len(g["members"]) for g in data["groups"]] == [2, 2, 1, 1]
    assert [data["pairs"][4][side].rsplit("/", 2)[-2:] for side in ("a_video", "target_video")] == \
        [["videos", "e.mp4"], ["videos", "x.mp4"]]
    assert data["pairs"][1]["target_video"] is None and data["pairs"][1]["target_source"] == str(made["gone"])


# --------------------------------------------------------------------------- the page in Chromium
def _wait(browser, script: str, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := browser.execute_script(script):
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_shows_groups_and_seeks_both_players_to_a_clicked_match(browser, made):
    page = write_dedup_report(made["folder"] / "dups.html", made["result"], [made["store"]])
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.resolve().as_uri())
    _wait(browser, "return document.querySelectorAll('#app > header').length === 1", "the page to build")
    count = lambda selector: browser.execute_script("return document.querySelectorAll(arguments[0]).length", selector)
    assert count("section.group") == 2 and count("figure.member") == 6 and count("figure.member.keeper") == 2
    # Groups numbered from 0 as in the JSON, the terminal and groups.csv; the groups of one (e, x) are cards in
    # "in no group", each its group's anchor, with no keeper; every group link lands on something.
    assert [label.get_attribute("textContent") for label in
            browser.find_elements("css selector", "section.group .query-label")] == ["group #0", "group #1"]
    assert [s.get_attribute("id") for s in browser.find_elements("css selector", "section.group")] == \
        ["group-0", "group-1"]
    singles = {card.get_attribute("data-id"): card for card in
               browser.find_elements("css selector", "#singles figure.member.single")}
    assert list(singles) == ["e", "x"] and [card.get_attribute("id") for card in singles.values()] == \
        ["group-2", "group-3"]
    assert "keep" not in singles["x"].text and "#3" in singles["x"].text
    assert "linked to group #1 (overlap), e (#2) (overlap)" in singles["x"].text  # sorted by number
    assert "linked to group #0 (contains, overlap), x (#3) (overlap)" in \
        browser.find_element("css selector", "#group-1 > .group-links").text
    assert browser.execute_script("return [...document.querySelectorAll('a.group-ref')].every("
                                  "a => document.getElementById(a.getAttribute('href').slice(1)))")
    assert "random, untrained weights" in browser.find_element("css selector", ".banner-random").text
    _wait(browser, "return [...document.querySelectorAll('img.member-thumb')].every(i => i.complete && i.naturalWidth)",
          "the thumbnails")
    assert count("img.member-thumb") == 4 and count(".member-missing") == 2
    assert str(made["gone"]) in browser.find_element("css selector", ".member-missing").text
    cards = {card.get_attribute("data-id"): card.text
             for card in browser.find_elements("css selector", "figure.member")}
    captions = {card.get_attribute("data-id"): card.find_element("css selector", "figcaption").text
                for card in browser.find_elements("css selector", "figure.member")}
    assert captions["a"] == "a\nkeep" and captions["b"] == "b"  # the suggested keeper's badge
    for shown in ("0:10.0", "64×48", "10 fps", "41 kb/s", "2.48 MB"):
        assert shown in cards["b"]
    summary = browser.find_element("css selector", ".dedup-summary").text
    assert "2 groups of duplicates holding 4 videos (2 removable) · 2 videos in no group · 6 pairs, 4 links " \
        "between groups" in summary
    assert count("section.group tr.hit") == 2 and count("#links tr.hit") == 4 and count("div.pair") == 0
    # Open the contains link (a contains c): both players wait at the first match, then a click on match 2.
    row = browser.find_elements("css selector", "#links tr.hit")[0]
    assert "a contains c" in row.text and "a 60% · b 100%" in row.text
    row.click()
    assert count("div.pair") == 1 and count("div.pair .match") == 2 and count("div.pair .heatmap") == 0
    _wait(browser, "const v = [...document.querySelectorAll('div.pair video')];"
                   "return v.length === 2 && v.every(x => x.readyState >= 1)", "video metadata")
    times = ("const q = document.querySelector('div.pair video.player-query'), "
             "t = document.querySelector('div.pair video.player-target');"
             "return {a: q.currentTime, b: t.currentTime, paused: q.paused};")
    cued = _wait(browser, f"const r = (() => {{{times}}})(); return r.a > 1.9 ? r : null", "the first match's cue")
    assert cued["a"] == pytest.approx(2.0, abs=0.05) and cued["b"] == pytest.approx(0.0, abs=0.05) and cued["paused"]
    browser.find_elements("css selector", "div.pair .match")[1].click()  # match 2: a at 6 s, b at 4 s
    _wait(browser, "return !document.querySelector('div.pair video.player-query').paused", "the players to start")
    played = browser.execute_script(times)
    assert 6.0 <= played["a"] < 7.5 and 4.0 <= played["b"] < 5.5
    assert "Match 2 of 2: a 0:06.0, b 0:04.0" in browser.find_element("css selector", "div.pair .sync-status").text
    browser.find_elements("css selector", "#links tr.hit")[1].click()  # b overlaps d: d's player is a placeholder
    placeholder = browser.find_elements("css selector", "div.pair .placeholder")
    assert len(placeholder) == 1 and str(made["gone"]) in placeholder[0].text
    browser.execute_script("document.querySelectorAll('div.pair video').forEach(v => v.pause())")
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height + 140, 900), 4000))
    browser.save_screenshot(str(ARTIFACTS / "report_dedup.png"))
    browser.set_window_size(1280, 900)
    assert browser.execute_script("return window.__pwned") is None and count('img[src="x"]') == 0
    assert HOSTILE in browser.find_element("css selector", ".settings-table").get_attribute("textContent")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

