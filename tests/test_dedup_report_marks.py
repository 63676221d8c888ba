"""The dedup page's marks (`s2vs dedup --report`, assets/dedup_marks.js) in a real headless Chromium: pairs marked
copy / not a copy and members kept (rows, pair views, keyboard, undo), downloaded as decisions.json in exactly the
decisions format, merged with the decisions the result was made with (shown, relabelled, undone); what the
document embeds for them; and mark, download, rerun `dedup --decisions`: the pair marked not a copy is gone
(`_rerun_dedup_with_decisions`, skipped until `--decisions` is on the branch)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.report.dedup_review import carried_decisions, dedup_document, write_dedup_report
from test_dedup_report import HOSTILE, _wait, hand_made


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    return hand_made(tmp_path_factory.mktemp("dedup-marks"))


@pytest.fixture(scope="module")
def document(made) -> dict:
    return dedup_document(made["result"], [made["store"]])


# --------------------------------------------------------------------------- marks and decisions.json
DECIDED = {  # what `dedup --decisions` records in its result: the decisions it was made with
    "format": "s2vs-decisions", "version": 1,
    "videos": {"a": {"source": "/old/a.mp4"}, "b": {"source": None}, "c": {"source": None},
               "zz": {"source": "/old/zz.mp4"}, "x": {"source": None}, HOSTILE: {"source": None}},
    "pairs": [{"a": "a", "b": "b", "label": "copy", "note": "checked by hand"},
              {"a": "c", "b": "zz", "label": "not_copy", "at": "2026-12-01T10:00:00+00:00"},
              {"a": "x", "b": HOSTILE, "label": "not_copy"}],  # an id shown as text, never markup
    "keep": ["c"]}


def test_document_embeds_each_videos_source_and_the_decisions_it_was_made_with(made, document):
    # Sources: as the facts name them, else as the feature file recorded (x); e has neither.
    clip = {name: str(path) for name, path in made["clip"].items()}
    assert document["sources"] == {"a": clip["a"], "b": clip["b"], "c": clip["c"], "d": str(made["gone"]),
                                   "x": clip["x"]}
    assert document["decisions"] == {"videos": {}, "pairs": [], "keep": []}  # a result made without decisions
    decided = carried_decisions({**made["result"], "decisions": DECIDED})
    assert decided["videos"] == {"a": "/old/a.mp4", "b": None, "c": None, "zz": "/old/zz.mp4", "x": None, HOSTILE: None}
    assert decided["pairs"] == DECIDED["pairs"] and decided["keep"] == ["c"]  # note and at kept as they were
    bad = {**DECIDED, "pairs": [{"a": "a", "b": "b", "label": "dup"}]}
    with pytest.raises(ValueError, match=r"^decisions: pairs\[0\]: unknown label 'dup' \(copy or not_copy\)$"):
        carried_decisions({"decisions": bad})


def test_saved_result_with_a_bad_decision_is_a_one_line_error(made, tmp_path):
    saved = tmp_path / "duplicates.json"
    saved.write_text(json.dumps({**made["result"], "decisions": {**DECIDED, "pairs": [{"a": "a", "b": "b",
                                                                                       "label": "dup"}]}}))
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(tmp_path / "out.html")])
    assert result.exit_code == 2 and not (tmp_path / "out.html").exists()
    assert "malformed dedup results (ValueError: decisions: pairs[0]: unknown label 'dup'" in result.output
    assert "Traceback" not in result.output


def _open(browser, page: Path) -> None:
    browser.get_log("browser")
    browser.get(page.resolve().as_uri())
    _wait(browser, "return document.querySelectorAll('.marks-bar').length === 1", "the page to build")


MARK = {"copy": "button.mark-copy", "not a copy": "button.mark-not-copy", "keep this one": "button.mark-keep"}


def _press(browser, where: str, label: str) -> None:
    """Click the first button `label` ("copy", "not a copy" or "keep this one") inside the first `where`."""
    _click(browser, browser.find_element("css selector", where).find_element("css selector", MARK[label]))


def _click(browser, element) -> None:
    """Click `element` scrolled to the middle of the window: not under the sticky bar, as a reader would."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _row(browser, section: str, names: str):
    """The pair row of `section` whose pair reads `names` ("a ↔ c")."""
    [row] = [r for r in browser.find_elements("css selector", f"{section} tr.hit") if names in r.text]
    return row


def _download(browser, folder: Path) -> dict:
    """Click "download decisions.json" with downloads going to `folder` (emptied first); the file's JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    browser.find_element("css selector", "button.marks-download").click()
    deadline = time.monotonic() + 10
    while not (folder / "decisions.json").is_file() or list(folder.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"no decisions.json downloaded: {list(folder.iterdir())}"
        time.sleep(0.05)
    return json.loads((folder / "decisions.json").read_text(encoding="utf-8"))


def _leaving_asks(browser) -> bool:
    """Whether leaving the page would ask first (its beforeunload handler cancels the event)."""
    return browser.execute_script("const e = new Event('beforeunload', {cancelable: true}); "
                                  "window.dispatchEvent(e); return e.defaultPrevented;")


def _bar(browser) -> str:
    return browser.find_element("css selector", ".marks-bar").get_attribute("textContent")


def test_page_marks_pairs_and_a_keeper_and_downloads_them_as_decisions(browser, made, tmp_path):
    page = write_dedup_report(made["folder"] / "marks.html", made["result"], [made["store"]])
    _open(browser, page)
    count = lambda selector: browser.execute_script("return document.querySelectorAll(arguments[0]).length", selector)
    assert _bar(browser).startswith("0 marks · download decisions.json") and count("#decisions") == 0
    assert not _leaving_asks(browser)
    assert count("button.mark-keep") == 4  # group members only: a video in no group has nothing to keep
    assert "b ↔ d" in browser.find_element("css selector", "#links tr.hit:nth-of-type(3)").text  # rows alternate
    _press(browser, "#links tr.hit:nth-of-type(3)", "not a copy")  # with their (shut) pair rows
    assert "marked: not a copy" in _row(browser, "#links", "b ↔ d").text
    _press(browser, "#links", "copy")  # the first link: a contains c
    _press(browser, 'figure.member[data-id="b"]', "keep this one")
    assert count("div.pair") == 0  # a mark opens no pair view
    assert _bar(browser).startswith("3 marks · not downloaded yet · download decisions.json")
    assert _leaving_asks(browser)  # marks not downloaded: leaving the page asks first
    assert "✓ keep this one" in browser.find_element("css selector", 'figure.member[data-id="b"]').text
    # The mark shows in the pair view, survives closing and reopening it, and is undone from there.
    row = _row(browser, "#links", "a ↔ c")
    _click(browser, row)
    assert browser.find_element("css selector", "div.pair .pair-marks").get_attribute("data-mark") == "copy"
    _click(browser, row)
    _click(browser, row)
    assert "marked: copy" in browser.find_element("css selector", "div.pair .pair-marks").text
    _press(browser, "div.pair", "copy")  # pressed again: undone, in the view and its row
    marks = _row(browser, "#links", "a ↔ c").find_element("css selector", ".pair-marks")
    assert marks.get_attribute("data-mark") == "" and "marked" not in marks.text
    assert _bar(browser).startswith("2 marks")
    _press(browser, "div.pair", "copy")
    # Keyboard: buttons take focus; Enter marks, Space undoes, and neither opens the row.
    keys = _row(browser, "#links", "e ↔ x").find_element("css selector", "button.mark-not-copy")
    keys.send_keys("\n")
    assert keys.get_attribute("aria-pressed") == "true" and _bar(browser).startswith("4 marks")
    keys.send_keys(" ")
    assert keys.get_attribute("aria-pressed") == "false" and count("div.pair") == 1
    assert _download(browser, tmp_path / "downloads") == {
        "format": "s2vs-decisions", "version": 1,
        "videos": {"a": {"source": str(made["clip"]["a"])}, "b": {"source": str(made["clip"]["b"])},
                   "c": {"source": str(made["clip"]["c"])}, "d": {"source": str(made["gone"])}},
        "pairs": [{"a": "b", "b": "d", "label": "not_copy"}, {"a": "a", "b": "c", "label": "copy"}],
        "keep": ["b"]}
    assert _bar(browser).startswith("3 marks · download decisions.json") and not _leaving_asks(browser)
    # Keeping another member of b's group moves the mark; its source is unknown (e's would be null too).
    _press(browser, 'figure.member[data-id="a"]', "keep this one")
    assert _download(browser, tmp_path / "downloads")["keep"] == ["a"]
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_decisions_the_result_was_made_with_are_shown_and_merged(browser, made, tmp_path):
    page = write_dedup_report(made["folder"] / "decided.html", {**made["result"], "decisions": DECIDED},
                              [made["store"]])
    _open(browser, page)
    assert _bar(browser).startswith("4 marks (4 carried over from the decisions dedup ran with) · download")
    assert not _leaving_asks(browser)  # what dedup ran with is not lost with the page
    carried = browser.find_element("css selector", "#decisions").get_attribute("textContent")
    assert "decisions this page was made with" in carried and "c ↔ zz" in carried and "decided: not a copy" in carried
    assert "decided: copy" in _row(browser, "section.group", "a ↔ b").text  # carried pairs marked in their rows
    assert "decided: keep" in browser.find_element("css selector", 'figure.member[data-id="c"]').text
    _press(browser, "#group-0", "not a copy")  # a new mark on a decided pair replaces its label, keeps its note
    assert HOSTILE in browser.find_element("css selector", "#decisions li:nth-child(3)").text
    _press(browser, "#decisions li:nth-child(3)", "not a copy")  # x ↔ HOSTILE: pressed again, out of the file
    _press(browser, "#links tr.hit:nth-of-type(3)", "copy")  # b ↔ d, new
    assert "marked: not a copy" in _row(browser, "section.group", "a ↔ b").text
    assert _bar(browser).startswith("4 marks (2 carried over")
    assert _download(browser, tmp_path / "downloads") == {
        "format": "s2vs-decisions", "version": 1,
        # the page's sources first, the decisions file's for a video not in the result (zz)
        "videos": {"a": {"source": str(made["clip"]["a"])}, "b": {"source": str(made["clip"]["b"])},
                   "c": {"source": str(made["clip"]["c"])}, "d": {"source": str(made["gone"])},
                   "zz": {"source": "/old/zz.mp4"}},
        "pairs": [{"a": "a", "b": "b", "label": "not_copy", "note": "checked by hand"},
                  {"a": "c", "b": "zz", "label": "not_copy", "at": "2026-12-01T10:00:00+00:00"},
                  {"a": "b", "b": "d", "label": "copy"}],
        "keep": ["c"]}
    assert browser.execute_script("return window.__pwned") is None
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


# --------------------------------------------------------------------------- mark, download, rerun: the pair is gone
def _rerun_dedup_with_decisions(store: Path, decisions: Path, out: Path, *flags: str) -> dict:
    """THE PLACE for `s2vs dedup --decisions` (issue 29, built beside this page): rerun dedup with the page's
    download; its result. Skipped only while `--decisions` is absent from `s2vs dedup --help` (before the merge)."""
    shown = CliRunner().invoke(app, ["dedup", "--help"], env={"COLUMNS": "200"})
    if "--decisions" not in shown.output:
        pytest.skip("dedup --decisions is not on this branch")
    rerun = CliRunner().invoke(app, ["dedup", str(store), "-o", str(out), *flags, "--decisions", str(decisions)])
    assert rerun.exit_code == 0, rerun.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_pair_marked_not_a_copy_is_gone_when_dedup_reruns_with_the_download(browser, tmp_path):
    from test_dedup import FLOORS, IDENTITY as PLANTED, planted
    from test_search import write_store

    store = tmp_path / "planted.h5"
    write_store(store, planted(), identity=PLANTED)
    flags = ["--features-only", "--exhaustive",
             *(f"--{key.replace('_', '-')}={value}" for key, value in FLOORS.items())]
    made = CliRunner().invoke(app, ["dedup", str(store), "-o", str(tmp_path / "dups.json"), *flags,
                                    "--report", str(tmp_path / "dups.html")])
    assert made.exit_code == 0, made.output
    listed = {(p["a"], p["b"]) for p in json.loads((tmp_path / "dups.json").read_text())["pairs"]}
    assert ("e-left", "f-right") in listed  # they share a part: an overlap, a link between two groups of one
    _open(browser, tmp_path / "dups.html")
    assert ("a-orig", "d-excerpt") in listed  # an excerpt: contains, not grouped
    _press(browser, f"#links tr.hit:nth-of-type({2 * _link_row(browser, 'e-left ↔ f-right') + 1})", "not a copy")
    _press(browser, f"#links tr.hit:nth-of-type({2 * _link_row(browser, 'a-orig ↔ d-excerpt') + 1})", "copy")
    _press(browser, 'figure.member[data-id="c-noisy"]', "keep this one")
    decisions = _download(browser, tmp_path / "downloads")
    assert decisions == {"format": "s2vs-decisions", "version": 1,
                         "videos": {name: {"source": None} for name in  # the store recorded no source
                                    ("e-left", "f-right", "a-orig", "d-excerpt", "c-noisy")},
                         "pairs": [{"a": "e-left", "b": "f-right", "label": "not_copy"},
                                   {"a": "a-orig", "b": "d-excerpt", "label": "copy"}], "keep": ["c-noisy"]}
    rerun = _rerun_dedup_with_decisions(store, tmp_path / "downloads" / "decisions.json", tmp_path / "again.json",
                                        *flags)
    again = {(p["a"], p["b"]): p for p in rerun["pairs"]}
    assert ("e-left", "f-right") not in again and set(again) == listed - {("e-left", "f-right")}
    assert again[("a-orig", "d-excerpt")]["decision"] == "copy"
    [group] = [g for g in rerun["groups"] if "a-orig" in g["members"]]
    assert "d-excerpt" in group["members"] and group["keep"] == "c-noisy"  # grouped as marked, kept as marked
    # The rerun's result holds the file it was made with, so its page carries every decision on, the pair no
    # longer listed included: a download from it loses none.
    assert rerun["decisions"] == decisions
    assert carried_decisions(rerun) == {"videos": {video: None for video in decisions["videos"]},
                                        "pairs": decisions["pairs"], "keep": ["c-noisy"]}


def _link_row(browser, names: str) -> int:
    """The position (from 0) of the links table's row whose pair reads `names`."""
    rows = [row.text for row in browser.find_elements("css selector", "#links tr.hit")]
    return next(i for i, text in enumerate(rows) if names in text)
