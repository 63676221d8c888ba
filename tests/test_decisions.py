"""The decisions file (storage/decisions.py): every error message, round trip, duplicates, merge, lookups."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.errors import ConfigError
from s2vs_cli.storage.decisions import Decisions, DecisionsError, load_decisions, save_decisions
from test_search import collection, write_store

VIDEOS = {"bikes": {"source": "/v/bikes.mp4"}, "bikes-small": {"source": None}, "car": {"source": None},
          "walk": {"source": "/v/walk.mp4"}}


def document(**changes) -> dict:
    base = {"format": "s2vs-decisions", "version": 1, "videos": json.loads(json.dumps(VIDEOS)),
            "pairs": [{"a": "bikes", "b": "bikes-small", "label": "copy"},
                      {"a": "car", "b": "walk", "label": "not_copy", "note": "different cars",
                       "at": "2026-12-07T04:00:00Z"}],
            "keep": ["bikes"]}
    return base | changes


def written(tmp_path, data, name: str = "decisions.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_lookups_and_not_in(tmp_path):
    decisions = load_decisions(written(tmp_path, document()))
    assert decisions.label("bikes-small", "bikes") == decisions.label("bikes", "bikes-small") == "copy"
    assert decisions.label("walk", "car") == "not_copy" and decisions.label("bikes", "walk") is None
    assert decisions.pairs("copy") == [("bikes", "bikes-small")] and decisions.keep == ["bikes"]
    assert decisions.videos["bikes"] == "/v/bikes.mp4" and decisions.videos["car"] is None
    assert decisions.not_in({"bikes", "bikes-small", "car"}) == [{"a": "car", "b": "walk", "label": "not_copy"}]
    assert decisions.not_in({"car", "walk"}) == [{"a": "bikes", "b": "bikes-small", "label": "copy"},
                                                 {"keep": "bikes"}]


def test_round_trip_keeps_note_and_time(tmp_path):
    decisions = load_decisions(written(tmp_path, document()))
    again = tmp_path / "again.json"
    save_decisions(again, decisions)
    assert load_decisions(again) == decisions
    saved = json.loads(again.read_text())
    assert saved["pairs"][1] == {"a": "car", "b": "walk", "label": "not_copy", "note": "different cars",
                                 "at": "2026-12-07T04:00:00Z"}
    assert saved["videos"] == VIDEOS and saved["format"] == "s2vs-decisions" and saved["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("*.tmp*"))  # no temporary left


def test_duplicates_are_one_decision(tmp_path):
    pairs = document()["pairs"] + [{"a": "bikes-small", "b": "bikes", "label": "copy"},
                                   {"a": "walk", "b": "bikes", "label": "copy"}]
    decisions = load_decisions(written(tmp_path, document(pairs=pairs, keep=["bikes", "bikes"])))
    assert len(decisions.labels) == 3 and decisions.keep == ["bikes"]
    saved = decisions.as_dict()["pairs"]
    assert [(p["a"], p["b"]) for p in saved] == [("bikes", "bikes-small"), ("car", "walk"), ("walk", "bikes")]
    assert decisions.as_ground_truth({"bikes", "walk", "car"}) == {  # as written: a is the query
        "queries": ["car", "walk"], "database": ["walk", "bikes"], "positives": {"car": [], "walk": ["bikes"]},
        "negatives": {"car": ["walk"], "walk": []}}


def test_keep_is_optional(tmp_path):
    data = document()
    del data["keep"]
    assert load_decisions(written(tmp_path, data)).keep == []


def test_merged_newer_wins():
    old = Decisions({"a": None, "b": "/b", "c": None}, {("a", "b"): "copy", ("a", "c"): "copy"},
                    {("a", "b"): {"note": "old"}}, ["a"])
    new = Decisions({"a": "/a", "b": None, "d": None}, {("a", "b"): "not_copy", ("c", "d"): "copy"}, {}, ["d", "a"])
    both = old.merged(new)
    assert both.labels == {("a", "b"): "not_copy", ("a", "c"): "copy", ("c", "d"): "copy"}
    assert both.extras == {}  # the old note was about the old judgement
    assert both.videos == {"a": "/a", "b": "/b", "c": None, "d": None}
    assert both.keep == ["a", "d"]


def _pairs_with(*extra):
    return document()["pairs"] + list(extra)


@pytest.mark.parametrize("data, message", [
    ("{", "decisions.json: not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
    ([], "decisions.json: not a decisions file (a JSON object with format 's2vs-decisions')"),
    (document(format="other"), "decisions.json: format is 'other', not 's2vs-decisions'"),
    (document(version=2), "decisions.json: version 2 is not one this s2vs reads (1)"),
    (document(extra=1), "decisions.json: unknown key 'extra' (format, version, videos, pairs, keep)"),
    ({k: v for k, v in document().items() if k != "pairs"}, "decisions.json: no 'pairs'"),
    (document(pairs={}), "decisions.json: 'pairs' must be a list, got dict"),
    (document(keep="bikes"), "decisions.json: 'keep' must be a list, got str"),
    (document(videos=[]), "decisions.json: 'videos' must be an object of id: {\"source\": path or null}, got list"),
    (document(videos={"x": "/x"}), "decisions.json: videos['x']: must be {\"source\": path or null}"),
    (document(videos={"x": {"source": 3}}), "decisions.json: videos['x']: source must be a path or null, got int"),
    (document(videos={"x": {"source": None, "size": 1}}),
     "decisions.json: videos['x']: unknown key 'size' (source)"),
    (document(pairs=_pairs_with({"a": "car", "b": "bikes", "label": "dup"})),
     "decisions.json: pairs[2]: unknown label 'dup' (copy or not_copy)"),
    (document(pairs=[{"a": "zz", "b": "bikes", "label": "copy"}]),
     "decisions.json: pairs[0]: unknown id 'zz' (not in the file's videos)"),
    (document(keep=["bikes", "zz"]), "decisions.json: keep[1]: unknown id 'zz' (not in the file's videos)"),
    (document(keep=[3]), "decisions.json: keep[0]: an id must be text, got int"),
    (document(pairs=_pairs_with({"a": "walk", "b": "car", "label": "copy"})),
     "decisions.json: pairs[2]: 'walk' and 'car' are marked both not_copy (pairs[1]) and copy"),
    (document(pairs=[{"a": "car", "b": "car", "label": "copy"}]), "decisions.json: pairs[0]: a pair of 'car' with itself"),
    (document(pairs=[{"a": "car", "label": "copy"}]), "decisions.json: pairs[0]: no 'b'"),
    (document(pairs=[["car", "walk"]]), "decisions.json: pairs[0]: must be an object {\"a\", \"b\", \"label\"}, got list"),
    (document(pairs=[{"a": "car", "b": "walk", "label": "copy", "score": 1}]),
     "decisions.json: pairs[0]: unknown key 'score' (a, b, label, note, at)"),
    (document(pairs=[{"a": "car", "b": "walk", "label": "copy", "note": 1}]),
     "decisions.json: pairs[0]: note and at must be text"),
    (document(pairs=[{"a": "car", "b": "walk", "label": "copy", "at": "yesterday"}]),
     "decisions.json: pairs[0]: at 'yesterday' is not an ISO-8601 time"),
])
def test_errors_are_one_line_naming_the_entry(tmp_path, monkeypatch, data, message):
    monkeypatch.chdir(tmp_path)
    written(tmp_path, data)
    with pytest.raises(DecisionsError) as error:
        load_decisions("decisions.json")
    assert str(error.value) == message and "\n" not in message
    assert isinstance(error.value, ConfigError)  # exit 2 through the CLI


def test_search_drops_not_copy_hits_of_a_stored_query(tmp_path):
    store = tmp_path / "features.h5"
    write_store(store, collection())
    videos = {video: {"source": None} for video in ("query", "query-copy", "long", "elsewhere")}
    decisions = written(tmp_path, {"format": "s2vs-decisions", "version": 1, "videos": videos, "pairs": [
        {"a": "query-copy", "b": "query", "label": "not_copy"}, {"a": "query", "b": "long", "label": "copy"},
        {"a": "query", "b": "elsewhere", "label": "not_copy"}]})
    args = ["search", "query", "v001", "--database", str(store), "--features-only", "-k", "3", "--json"]
    plain, plain_other = json.loads(CliRunner().invoke(app, args).stdout)["results"]
    assert {"query-copy", "long"} <= {hit["id"] for hit in plain["hits"]}
    assert "not_copy_dropped" not in plain["stages"] and all("decision" not in hit for hit in plain["hits"])
    done = CliRunner().invoke(app, [*args, "--decisions", str(decisions)])
    assert done.exit_code == 0, done.output
    query, other = json.loads(done.stdout)["results"]
    hits = {hit["id"]: hit for hit in query["hits"]}
    assert "query-copy" not in hits and len(hits) == 3 and query["stages"]["not_copy_dropped"] == 1
    assert hits["long"]["decision"] == "copy" and [h.get("decision") for h in query["hits"]].count("copy") == 1
    assert other["stages"]["not_copy_dropped"] == 0 and other["hits"] == plain_other["hits"]  # nothing about v001

