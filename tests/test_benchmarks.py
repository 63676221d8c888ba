"""Tests of the benchmark registry and loaders: names, annotation files (artifacts table) and cache, safe
unpickling, id sets."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import pickle
import shutil
import threading
from pathlib import Path

import pytest
from conftest import SHARED

from s2vs_cli.artifacts import ANNOTATION, ARTIFACTS, Artifact, artifacts_of
from s2vs_cli.datasets import files
from s2vs_cli import downloads
from s2vs_cli.datasets import (
    DATASET_NAMES,
    Benchmark,
    DATASETS,
    AnnotationError,
    CCWebBenchmark,
    EVVEBenchmark,
    FIVRBenchmark,
    VCDBBenchmark,
    annotation_path,
    benchmark_class,
    canonical_name,
    load_benchmark,
    load_easy_duplicates,
    load_official_fivr200k_annotation,
    read_pickle,
)
from s2vs_cli.errors import ConfigError
from s2vs_cli.progress import CallbackProgress

ANNOTATION_ARTIFACTS = artifacts_of(ANNOTATION)

DATA = SHARED / "data"

# Benchmark name -> registry entry of its annotation file.
SOURCES = {"FIVR-5K": "fivr", "FIVR-200K": "fivr", "VCDB": "vcdb", "EVVE": "evve", "CC_WEB_VIDEO": "cc_web_video"}


class Custom:
    """A class the restricted unpickler must refuse."""


class RunsCommand:
    """Unpickling this would call os.system, were it allowed."""

    def __reduce__(self):
        return (os.system, ("echo unsafe",))


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache folder and a clean environment."""
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("S2VS_OFFLINE", raising=False)
    monkeypatch.setattr(downloads, "_DIGESTS", {})


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} not found: the ../shared folder (annotation files) is not beside the checkout")
    return DATA


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _pre_cache(data_dir: Path, tmp_path: Path, key: str) -> Path:
    """Copy the shared copy of a registry file into the cache under its cache name."""
    artifact = ANNOTATION_ARTIFACTS[key]
    dest = _cache(tmp_path) / artifact.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data_dir / artifact.filename, dest)
    return dest


def _load(how: str, name: str, data_dir: Path, tmp_path: Path, monkeypatch, **kw):
    """Load `name` from the shared copy, either as a user path or from a pre-populated offline cache."""
    key = SOURCES[canonical_name(name)]
    if how == "annotations":
        return load_benchmark(name, annotations=data_dir / ANNOTATION_ARTIFACTS[key].filename, **kw)
    _pre_cache(data_dir, tmp_path, key)
    monkeypatch.setenv("S2VS_OFFLINE", "1")
    return load_benchmark(name, **kw)


def _write_pickle(path: Path, obj, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _no_dupes(ids: list[str]) -> bool:
    return len(ids) == len(set(ids))


HOW = pytest.mark.parametrize("how", ["annotations", "cache"])


# ---------------------------------------------------------------------------------------------
# Names and registry


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("FIVR-5K", "FIVR-5K"), ("fivr-5k", "FIVR-5K"), ("FIVR_200K", "FIVR-200K"), ("vcdb", "VCDB"),
        (" Evve ", "EVVE"), ("cc_web_video", "CC_WEB_VIDEO"), ("CC-WEB-VIDEO", "CC_WEB_VIDEO"),
        ("Custom", "custom"), ("vsc22", "VSC22"), ("VSC_2022", "VSC22"), ("vsc-22", "VSC22"),
    ],
)
def test_names_are_case_insensitive(given, canonical):
    assert canonical_name(given) == canonical


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_benchmark("fivr-10k")
    msg = str(e.value)
    assert "'fivr-10k'" in msg and "\n" not in msg
    assert all(name in msg for name in DATASET_NAMES) and "custom" in msg and "VSC22" in msg


@pytest.mark.parametrize("name, given", [("VSC22", "GT.csv"), ("custom", "GT.json")])
def test_a_benchmark_without_annotation_file_says_what_it_reads(name, given):
    with pytest.raises(ConfigError, match=f"{name} has no annotation file.*--ground-truth {given}"):
        load_benchmark(name)


def test_paper_numbers_live_on_the_benchmark():
    fivr = FIVRBenchmark(name="FIVR-200K", queries=[], database=[], source=None, version="200k", annotation={})
    assert fivr.paper("s2vs_dns") == {"DSVR": 0.925, "CSVR": 0.913, "ISVR": 0.841}
    assert fivr.paper("s2vs_vcdb") is None
    assert dataclasses.replace(fivr, name="FIVR-5K").paper("s2vs_dns") is None


def test_registry_entries():
    assert DATASET_NAMES == tuple(DATASETS) and set(SOURCES) | {"custom", "VSC22"} == set(DATASETS)
    kinds = {name: benchmark_class(name) for name in DATASETS}
    assert {name: kind.annotation_file for name, kind in kinds.items() if kind.annotation_file} == SOURCES
    # the others read a ground truth the user gives: its file is named in their usage errors
    assert {name for name, kind in kinds.items() if kind.ground_truth_file} == {"custom", "VSC22"}
    assert set(SOURCES.values()) < set(ANNOTATION_ARTIFACTS)
    assert all(artifact.option in ("--annotations", "--easy-duplicates") for artifact in ANNOTATION_ARTIFACTS.values())
    assert len({a.filename for a in ANNOTATION_ARTIFACTS.values()}) == len(ANNOTATION_ARTIFACTS)
    for key, artifact in ANNOTATION_ARTIFACTS.items():
        assert artifact.name == key and artifact.url.startswith("https://raw.githubusercontent.com/")
        assert len(artifact.sha256) == 64 and int(artifact.sha256, 16) >= 0


def test_what_the_registry_line_says_agrees_with_the_class_and_makes_the_help():
    """The help of --dataset (extract-features, extract-frames, calibrate) comes from the registry, whose flags
    say what each class does: an annotation file naming the videos, labels that are copies."""
    from typer.testing import CliRunner

    from s2vs_cli.cli import app
    from s2vs_cli.datasets.registry import COPY_LABEL_NAMES, VIDEO_LIST_NAMES

    for name, entry in DATASETS.items():
        kind = benchmark_class(name)
        assert entry.lists_videos == bool(kind.annotation_file), name
        labels_copies = kind.copies is not Benchmark.copies  # the base class refuses: no copy labels
        assert entry.labels_copies == labels_copies, name
    assert VIDEO_LIST_NAMES == ("FIVR-5K", "FIVR-200K", "VCDB", "EVVE", "CC_WEB_VIDEO")
    assert "EVVE" not in COPY_LABEL_NAMES and {"VCDB", "VSC22", "custom"} <= set(COPY_LABEL_NAMES)
    for command, names in (("extract-features", VIDEO_LIST_NAMES), ("extract-frames", VIDEO_LIST_NAMES),
                           ("calibrate", COPY_LABEL_NAMES)):
        text = " ".join(CliRunner().invoke(app, [command, "--help"]).output.replace("│", " ").split())
        assert ", ".join(names) in text, command


def test_shared_copies_match_registry(data_dir):
    for artifact in ANNOTATION_ARTIFACTS.values():
        digest = hashlib.sha256((data_dir / artifact.filename).read_bytes()).hexdigest()
        assert digest == artifact.sha256, artifact.filename


# ---------------------------------------------------------------------------------------------
# The real annotation files: via --annotations and via the offline cache


@HOW
def test_fivr_5k(how, data_dir, tmp_path, monkeypatch):
    b = _load(how, "fivr-5k", data_dir, tmp_path, monkeypatch)
    assert isinstance(b, FIVRBenchmark) and (b.name, b.version) == ("FIVR-5K", "5k")
    assert (len(b.queries), len(b.database)) == (50, 5000)
    assert b.queries == sorted(b.queries) and b.database == sorted(b.database)
    ids = b.video_ids()
    assert _no_dupes(ids) and ids[:50] == b.queries
    assert set(ids) == set(b.queries) | set(b.database)
    assert set(b.queries) <= set(b.annotation)
    assert {label for labels in b.annotation.values() for label in labels} == {"ND", "DS", "CS", "IS", "DA"}


@HOW
def test_fivr_200k(how, data_dir, tmp_path, monkeypatch):
    b = _load(how, "FIVR-200K", data_dir, tmp_path, monkeypatch)
    assert isinstance(b, FIVRBenchmark) and b.version == "200k"
    assert (len(b.queries), len(b.database)) == (100, 225_960)
    assert set(b.queries) == set(b.annotation)
    # Every FIVR-200K query is also a database video.
    assert b.video_ids()[:100] == b.queries and len(b.video_ids()) == 225_960


@HOW
def test_evve(how, data_dir, tmp_path, monkeypatch):
    b = _load(how, "EVVE", data_dir, tmp_path, monkeypatch)
    assert isinstance(b, EVVEBenchmark)
    assert (len(b.queries), len(b.database)) == (620, 2373)
    assert not set(b.queries) & set(b.database)
    assert set().union(*(q for q, _ in b.events.values())) == set(b.queries)
    assert set().union(*(p for _, p in b.events.values())) <= set(b.database)
    ids = b.video_ids()
    assert len(ids) == 620 + 2373 and ids[:620] == b.queries


@HOW
def test_cc_web_video(how, data_dir, tmp_path, monkeypatch):
    b = _load(how, "cc_web_video", data_dir, tmp_path, monkeypatch)
    assert isinstance(b, CCWebBenchmark)
    assert len(b.queries) == len(b.ground_truth) == len(b.excluded) == 24
    assert len(b.index) == 13_115 and sorted(b.index) == b.database
    for query, labels in zip(b.queries, b.ground_truth):
        assert labels[b.index[query]] == "E"  # the query is labelled E in its own set
    ids = b.video_ids()
    assert _no_dupes(ids) and len(ids) == 13_115 and ids[:24] == b.queries


@HOW
def test_vcdb(how, data_dir, tmp_path, monkeypatch):
    b = _load(how, "VCDB", data_dir, tmp_path, monkeypatch)
    assert isinstance(b, VCDBBenchmark)
    assert len(b.queries) == 528 and b.database == b.queries and b.video_ids() == b.queries
    assert set(b.positives) == set(b.queries)
    for q, pos in b.positives.items():
        assert pos and q not in pos and pos <= set(b.queries)
        assert all(q in b.positives[p] for p in pos)  # pairs link both ways
    raw = read_pickle(data_dir / "vcdb.pickle")
    assert b.queries == raw["index"][:528]
    assert b.distractors == list(dict.fromkeys(raw["negs"]))  # the file lists 4 of them twice


@HOW
def test_vcdb_with_distractors(how, data_dir, tmp_path, monkeypatch):
    b = _load(how, "vcdb", data_dir, tmp_path, monkeypatch, distractors=True)
    distractors = set(read_pickle(data_dir / "vcdb.pickle")["negs"])
    assert len(b.database) == 528 + len(distractors)
    assert b.database[:528] == b.queries and set(b.database[528:]) == distractors
    assert _no_dupes(b.video_ids()) and b.video_ids() == b.database


def test_official_fivr200k_json_agrees_with_pickle(data_dir):
    fivr = load_benchmark("FIVR-200K", annotations=data_dir / "fivr_audio.pickle")
    assert load_official_fivr200k_annotation(data_dir / "fivr200k_annotation.json") == fivr.annotation


# ---------------------------------------------------------------------------------------------
# FIVR's easy duplicates: another registry file, read only when asked for


def test_easy_duplicates_are_lazy(data_dir, tmp_path, monkeypatch):
    _pre_cache(data_dir, tmp_path, "fivr")
    monkeypatch.setenv("S2VS_OFFLINE", "1")
    fivr = load_benchmark("FIVR-200K")  # the easy-duplicates file is not cached: not needed yet
    with pytest.raises(AnnotationError, match="fivr_easy_duplicates.txt") as e:
        fivr.easy_duplicates()
    assert ANNOTATION_ARTIFACTS["fivr_easy_duplicates"].url in str(e.value)
    assert "--easy-duplicates FILE" in str(e.value)

    from_path = fivr.easy_duplicates(data_dir / "fivr_easy_duplicates.txt")
    assert len(from_path) == 4873 and from_path <= set(fivr.database)
    assert not from_path & set(fivr.queries)
    _pre_cache(data_dir, tmp_path, "fivr_easy_duplicates")
    assert fivr.easy_duplicates() == from_path == load_easy_duplicates()


# ---------------------------------------------------------------------------------------------
# Cache and download


def test_tampered_cache_is_an_error_and_never_unpickled(tmp_path, monkeypatch):
    cached = _cache(tmp_path) / ANNOTATION_ARTIFACTS["evve"].filename
    cached.parent.mkdir()
    _write_pickle(cached, {"annotation": {}, "queries": [], "database": []})
    monkeypatch.setattr(files, "read_pickle", lambda p: pytest.fail("unpickled a file that failed its check"))
    with pytest.raises(AnnotationError, match="does not match the published") as e:
        load_benchmark("EVVE", offline=True)
    assert str(cached) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("env, offline, reason", [("1", None, "S2VS_OFFLINE is set"), (None, True, "downloads disabled")])
def test_offline_and_not_cached(tmp_path, monkeypatch, env, offline, reason):
    if env:
        monkeypatch.setenv("S2VS_OFFLINE", env)
    with pytest.raises(AnnotationError) as e:
        load_benchmark("VCDB", offline=offline)
    msg = str(e.value)
    assert "\n" not in msg and reason in msg
    assert ANNOTATION_ARTIFACTS["vcdb"].url in msg
    assert str(_cache(tmp_path) / "vcdb.pickle") in msg  # where to put it by hand
    assert "--annotations FILE" in msg  # or the option that takes a local copy


def test_unknown_registry_key():
    with pytest.raises(AnnotationError, match="evve"):
        annotation_path("nope")


class _Server:
    """A local HTTP server over one folder (no test touches the network)."""

    def __init__(self, root: Path):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served_evve(tmp_path, monkeypatch):
    """A tiny EVVE file behind a local server, registered with its true sha256; yields the server."""
    root = tmp_path / "www"
    root.mkdir()
    evve = {
        "annotation": {"e": ({"q1", "q2"}, {"d1"}, set())},
        "queries": ["q2", "q1"],
        "database": ["d2", "d1"],
    }
    sha256 = hashlib.sha256(_write_pickle(root / "evve.pickle", evve).read_bytes()).hexdigest()
    server = _Server(root)
    monkeypatch.setitem(ARTIFACTS, "evve", Artifact("evve", server.url("evve.pickle"), "evve.pickle", sha256,
                                                    kind=ANNOTATION, option="--annotations"))
    yield server
    server.close()


def test_download_then_cache(served_evve, tmp_path, monkeypatch):
    calls: list[tuple[int, int | None]] = []
    b = load_benchmark("evve", progress=CallbackProgress(download=lambda done, total: calls.append((done, total))))
    assert b.source == _cache(tmp_path) / "evve.pickle"
    assert (b.queries, b.database, b.video_ids()) == (["q1", "q2"], ["d1", "d2"], ["q1", "q2", "d1", "d2"])
    assert b.events == {"e": (frozenset({"q1", "q2"}), frozenset({"d1"}))}
    assert calls and calls[-1][0] == b.source.stat().st_size
    monkeypatch.setenv("S2VS_OFFLINE", "1")
    assert load_benchmark("EVVE") == b


def test_download_with_wrong_checksum_keeps_nothing(served_evve, tmp_path, monkeypatch):
    wrong = Artifact("evve", served_evve.url("evve.pickle"), "evve.pickle", "0" * 64, kind=ANNOTATION,
                     option="--annotations")
    monkeypatch.setitem(ARTIFACTS, "evve", wrong)
    monkeypatch.setattr(files, "read_pickle", lambda p: pytest.fail("unpickled an unverified download"))
    with pytest.raises(AnnotationError, match="sha256") as e:
        load_benchmark("EVVE")
    assert wrong.url in str(e.value) and not (_cache(tmp_path) / "evve.pickle").exists()


# ---------------------------------------------------------------------------------------------
# Restricted unpickling and user files


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_containers_load_at_every_protocol(tmp_path, protocol):
    obj = {"s": {"a", "b"}, "f": frozenset({1}), "t": (1.5, None, True), "l": ["x", -3], "d": {1: "E"}}
    if protocol >= 3:  # before protocol 3, bytes are pickled as a call to _codecs.encode (refused)
        obj["b"] = b"x"
    assert read_pickle(_write_pickle(tmp_path / "plain.pickle", obj, protocol)) == obj


@pytest.mark.parametrize(
    "obj, refused",
    [(RunsCommand(), "system"), (Custom(), "Custom"), (eval, "builtins.eval"), (Path("x"), "Path")],
    ids=["os.system", "class-instance", "builtin-function", "stdlib-class"],
)
def test_unpickler_refuses_other_globals(tmp_path, obj, refused):
    path = _write_pickle(tmp_path / "evil.pickle", {"queries": [obj]})
    with pytest.raises(AnnotationError, match="refused to unpickle") as e:
        load_benchmark("EVVE", annotations=path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and refused in msg and "\n" not in msg


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "annotation file not found"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "not a valid pickle file"),
        (lambda p: p.write_bytes(pickle.dumps({"queries": list(range(100))})[:40]), "not a valid pickle file"),
        (lambda p: p.write_text("<html>Not Found</html>"), "not a valid pickle file"),
        (lambda p: _write_pickle(p, ["a", "b"]), "expected a dict, found list"),
    ],
    ids=["missing", "directory", "empty", "truncated", "html", "not-a-dict"],
)
def test_bad_user_files(tmp_path, make, problem):
    path = tmp_path / "bad.pickle"
    make(path)
    with pytest.raises(AnnotationError, match=problem) as e:
        load_benchmark("CC_WEB_VIDEO", annotations=path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_wrong_benchmark_file_names_missing_keys(data_dir):
    with pytest.raises(AnnotationError, match=r"not a FIVR-5K annotation file \(missing '5k'; it has 'annotation', "):
        load_benchmark("FIVR-5K", annotations=data_dir / "evve.pickle")


def test_malformed_contents_are_one_line(tmp_path):
    path = _write_pickle(tmp_path / "evve.pickle", {"annotation": {"e": (set(),)}, "queries": [], "database": []})
    with pytest.raises(AnnotationError, match="unexpected EVVE annotation layout") as e:
        load_benchmark("EVVE", annotations=path)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# VCDB's two layouts, built small


def test_vcdb_original_layout(tmp_path):
    original = {
        "queries": ["a", "b", "c"],
        "positives": {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}},
        "dataset": ["x", "y", "x"],
    }
    path = _write_pickle(tmp_path / "vcdb.pickle", original, protocol=2)
    b = load_benchmark("VCDB", annotations=path)
    assert (b.queries, b.database, b.distractors) == (["a", "b", "c"], ["a", "b", "c"], ["x", "y"])
    assert b.positives == {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}
    assert all(isinstance(p, frozenset) for p in b.positives.values())
    with_distractors = load_benchmark("VCDB", annotations=path, distractors=True)
    assert with_distractors.database == with_distractors.video_ids() == ["a", "b", "c", "x", "y"]


def test_vcdb_pairs_layout(tmp_path):
    pairs = {
        "video_pairs": [
            {"videos": ["a", "b"], "overlap": [0.9, 0.8]},
            {"videos": ["c", "a"], "overlap": [0.5, 0.4]},
            {"videos": ["b", "b"], "overlap": [1.0, 1.0]},  # a video is never its own positive
        ],
        "index": ["b", "a", "c", "n1", "n2"],
        "negs": ["n1", "n2", "n1"],
    }
    path = _write_pickle(tmp_path / "vcdb.pickle", pairs)
    b = load_benchmark("vcdb", annotations=path, distractors=True)
    assert b.queries == ["b", "a", "c"] and b.database == ["b", "a", "c", "n1", "n2"]
    assert b.positives == {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}


def test_vcdb_unknown_layout_names_missing_keys(tmp_path):
    path = _write_pickle(tmp_path / "vcdb.pickle", {"queries": ["a"]})
    with pytest.raises(AnnotationError, match="not a VCDB annotation file .expected 'queries', 'positives'") as e:
        load_benchmark("VCDB", annotations=path)
    assert "'video_pairs', 'index', 'negs'" in str(e.value)
