"""The standard evaluation benchmarks (FIVR, VCDB, EVVE, CC_WEB_VIDEO): their annotation files and id sets.

Annotation files are downloaded into the s2vs cache with the helpers of `weights` and checked against
their published sha256, or read from a path the user gives. Pickles are read with an unpickler that
admits only built-in containers and scalars, so an annotation file can never run code.
Library code: stdlib and the package's own modules only.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, S2VSError, WeightsError
from ..models.weights import Artifact, ProgressFn, fetch

BENCHMARK_NAMES = ("FIVR-5K", "FIVR-200K", "VCDB", "EVVE", "CC_WEB_VIDEO")


class AnnotationError(S2VSError):
    """An annotation file could not be found, downloaded, verified or read."""


_GKORDO = "https://raw.githubusercontent.com/gkordo/s2vs/main/data"

ANNOTATION_FILES: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="fivr",
            url=f"{_GKORDO}/fivr_audio.pickle",
            filename="fivr_audio.pickle",
            sha256="41dc5f5aa3f9d0d9dae70dbea9054fb8fd55a5199fb3ffc554cfd68078158d8c",
            description="FIVR-5K/200K queries, databases and labels (ND, DS, CS, IS, DA)",
        ),
        Artifact(
            name="fivr_easy_duplicates",
            url=f"{_GKORDO}/fivr_easy_duplicates.txt",
            filename="fivr_easy_duplicates.txt",
            sha256="b50b7135d68d686c9a09f16196e134cab36d16007377c53f54c49ba83bc7efdb",
            description="FIVR videos removed from the database in the 'hard' evaluation",
        ),
        Artifact(
            name="fivr200k_official",
            url="https://raw.githubusercontent.com/MKLab-ITI/FIVR-200K/master/dataset/annotation.json",
            filename="fivr200k_annotation.json",
            sha256="ccd343bd1c442142da3b2ef9e571ae888d44ac039fd02de708b0be820385a3ea",
            description="The official FIVR-200K annotation (same labels as the FIVR pickle)",
        ),
        Artifact(
            name="evve",
            url=f"{_GKORDO}/evve.pickle",
            filename="evve.pickle",
            sha256="0898fafc817b9457be25cafeefa996d78d1021fb4816a9e3c1a14b7493023410",
            description="EVVE events, queries and database",
        ),
        Artifact(
            name="cc_web_video",
            url=f"{_GKORDO}/cc_web_video.pickle",
            filename="cc_web_video.pickle",
            sha256="6c33932cfa6ed08eb02fb47189b38bcef124c07794e99adf5c04163dcf4c52fe",
            description="CC_WEB_VIDEO index, query sets, ground truth and excluded videos",
        ),
        Artifact(
            name="vcdb",
            url="https://raw.githubusercontent.com/xwen99/temporal_context_aggregation/master/datasets/vcdb.pickle",
            filename="vcdb.pickle",
            sha256="6cec73506f401c4dc6d0af2757b2927307cff1dcb6f1c5d9d6775e358fefe4bf",
            description="VCDB copy pairs among the 528 core videos, and the distractors",
        ),
    )
}

# The annotation file each benchmark is read from.
_SOURCE = {
    "FIVR-5K": "fivr", "FIVR-200K": "fivr", "VCDB": "vcdb", "EVVE": "evve", "CC_WEB_VIDEO": "cc_web_video",
}

# Sets and frozensets are pickled as calls to their type; everything else these files hold has its own opcode.
_PLAIN_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool"}
)


# ---------------------------------------------------------------------------------------------
# The benchmarks


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's query and database video ids; subclasses add the ground truth its metrics read."""

    name: str              # one of BENCHMARK_NAMES
    queries: list[str]     # query video ids, in the order the metrics walk them
    database: list[str]    # video ids ranked for each query
    source: Path           # the annotation file read

    def video_ids(self) -> list[str]:
        """Every video the benchmark needs features for: queries first, then the database, no repeats."""
        return list(dict.fromkeys([*self.queries, *self.database]))


@dataclass(frozen=True)
class FIVRBenchmark(Benchmark):
    """FIVR-5K or FIVR-200K: queries and database sorted, as the original evaluates them."""

    version: str                                   # "5k" or "200k"
    annotation: dict[str, dict[str, list[str]]]    # query -> label (ND, DS, CS, IS, DA) -> video ids

    def easy_duplicates(
        self, path: str | Path | None = None, progress: ProgressFn | None = None, offline: bool | None = None
    ) -> frozenset[str]:
        """Videos the 'hard' variant removes from the database (read from `path` or the cache)."""
        return load_easy_duplicates(path, progress=progress, offline=offline)


@dataclass(frozen=True)
class VCDBBenchmark(Benchmark):
    """VCDB: the core videos are the queries; the database is them, plus the distractors if asked."""

    positives: dict[str, frozenset[str]]   # query -> videos that share a copied segment with it
    distractors: list[str]                 # the file's distractors, in `database` only if asked for


@dataclass(frozen=True)
class EVVEBenchmark(Benchmark):
    """EVVE: queries and database sorted and disjoint; a query's positives are those of its event."""

    events: dict[str, tuple[frozenset[str], frozenset[str]]]   # event -> (its queries, its positives)


@dataclass(frozen=True)
class CCWebBenchmark(Benchmark):
    """CC_WEB_VIDEO: query set i is queries[i], ground_truth[i] and excluded[i]."""

    index: dict[str, int]                # video id -> video number used by the ground truth
    ground_truth: list[dict[int, str]]   # per query set: video number -> label (E, S, V, M, L, X, ...)
    excluded: list[frozenset[int]]       # per query set: video numbers left out of the "clean" variant


Segment = tuple[float, float, float, float]  # (query start, query end, target start, target end), seconds


@dataclass(frozen=True)
class CustomBenchmark(Benchmark):
    """A user's own ground truth (`--dataset custom --ground-truth gt.json`)."""

    positives: dict[str, frozenset[str]]                 # query -> videos that match it
    negatives: dict[str, frozenset[str]] | None          # query -> videos known not to (optional)
    segments: dict[tuple[str, str], list[Segment]]       # (query, target) -> matching time ranges (optional)


CUSTOM_KEYS = ("queries", "database", "positives", "negatives", "segments")


def load_custom_ground_truth(path: str | Path) -> CustomBenchmark:
    """Read and validate a custom ground truth JSON file; errors name the offending entry.

    Layout: {"queries": [ids], "database": [ids], "positives": {query: [ids]}, optional "negatives":
    {query: [ids]} and "segments": {query: {target: [[q_start, q_end, t_start, t_end], ...]}} in seconds.
    """
    path = _user_file(path)
    try:
        data = json.loads(_read_text(path))
    except ValueError as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object with {', '.join(CUSTOM_KEYS[:3])}")
    unknown = [key for key in data if key not in CUSTOM_KEYS]
    if unknown:
        raise AnnotationError(f"{path}: unknown key '{unknown[0]}' (valid keys: {', '.join(CUSTOM_KEYS)})")
    for key in CUSTOM_KEYS[:3]:
        if key not in data:
            raise AnnotationError(f"{path}: missing '{key}'")
    queries = _id_list(data["queries"], path, "queries")
    database = _id_list(data["database"], path, "database")
    known = set(queries) | set(database)
    positives = _id_sets(data["positives"], path, "positives", set(queries), known)
    negatives = _id_sets(data["negatives"], path, "negatives", set(queries), known) if "negatives" in data else None
    if negatives is not None:
        for query, ids in negatives.items():
            both = ids & positives.get(query, frozenset())
            if both:
                raise AnnotationError(f"{path}: negatives['{query}']: '{sorted(both)[0]}' is also a positive")
    segments = _segments(data.get("segments", {}), path, positives)
    return CustomBenchmark(name="custom", queries=queries, database=database, source=path, positives=positives,
                           negatives=negatives, segments=segments)


def _id_list(value: Any, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise AnnotationError(f"{path}: '{key}' must be a non-empty list of video ids")
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise AnnotationError(f"{path}: {key}[{index}]: {item!r} is not a video id (a non-empty string)")
        if item in seen:
            raise AnnotationError(f"{path}: {key}[{index}]: '{item}' is listed twice")
        seen.add(item)
    return list(value)


def _id_sets(value: Any, path: Path, key: str, queries: set[str], known: set[str]) -> dict[str, frozenset[str]]:
    if not isinstance(value, dict):
        raise AnnotationError(f"{path}: '{key}' must map each query to a list of video ids")
    result = {}
    for query, ids in value.items():
        if query not in queries:
            raise AnnotationError(f"{path}: {key}['{query}']: '{query}' is not one of the queries")
        if not isinstance(ids, list):
            raise AnnotationError(f"{path}: {key}['{query}'] must be a list of video ids")
        for index, item in enumerate(ids):
            if not isinstance(item, str) or item not in known:
                raise AnnotationError(f"{path}: {key}['{query}'][{index}]: {item!r} is in neither the queries "
                                      "nor the database")
        result[query] = frozenset(ids)
    return result


def _segments(value: Any, path: Path, positives: dict[str, frozenset[str]]) -> dict[tuple[str, str], list[Segment]]:
    if not isinstance(value, dict):
        raise AnnotationError(f"{path}: 'segments' must map query -> target -> [[q_start, q_end, t_start, t_end], ...]")
    result: dict[tuple[str, str], list[Segment]] = {}
    for query, targets in value.items():
        if not isinstance(targets, dict):
            raise AnnotationError(f"{path}: segments['{query}'] must map targets to lists of time ranges")
        for target, ranges in targets.items():
            where = f"segments['{query}']['{target}']"
            if target not in positives.get(query, frozenset()):
                raise AnnotationError(f"{path}: {where}: '{target}' is not a positive of '{query}'")
            if not isinstance(ranges, list) or not ranges:
                raise AnnotationError(f"{path}: {where} must be a non-empty list of time ranges")
            parsed = []
            for index, item in enumerate(ranges):
                numbers = isinstance(item, list) and len(item) == 4 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)
                if not numbers or not (0 <= item[0] < item[1] and 0 <= item[2] < item[3]):
                    raise AnnotationError(f"{path}: {where}[{index}]: {item!r} is not "
                                          "[q_start, q_end, t_start, t_end] with 0 <= start < end (seconds)")
                parsed.append(tuple(float(v) for v in item))
            result[(query, target)] = parsed
    return result


def canonical_name(name: str) -> str:
    """The BENCHMARK_NAMES spelling of `name`, ignoring case and '-' versus '_'; ConfigError if unknown."""
    key = name.strip().upper().replace("_", "-")
    for known in BENCHMARK_NAMES:
        if known.replace("_", "-") == key:
            return known
    raise ConfigError(f"unknown benchmark '{name}'; use one of: {', '.join(BENCHMARK_NAMES)}")


def load_benchmark(
    name: str,
    annotations: str | Path | None = None,
    distractors: bool = False,
    progress: ProgressFn | None = None,
    offline: bool | None = None,
) -> Benchmark:
    """Load a benchmark from `annotations` if given, else from its verified (downloaded) annotation file.

    `distractors` adds VCDB's distractors to its database; the other benchmarks ignore it.
    """
    name = canonical_name(name)
    if annotations is None:
        path = annotation_path(_SOURCE[name], progress=progress, offline=offline)
    else:
        path = _user_file(annotations)
    data = _expect(read_pickle(path), dict, path, "a dict")
    with _layout_errors(path, name):
        if name.startswith("FIVR"):
            return _fivr(name, data, path)
        if name == "VCDB":
            return _vcdb(data, path, distractors)
        if name == "EVVE":
            return _evve(data, path)
        return _cc_web(data, path)


def load_easy_duplicates(
    path: str | Path | None = None, progress: ProgressFn | None = None, offline: bool | None = None
) -> frozenset[str]:
    """FIVR's easy duplicates (one video id per line), from `path` or the verified cache."""
    path = _user_file(path) if path is not None else annotation_path(
        "fivr_easy_duplicates", progress=progress, offline=offline
    )
    return frozenset(_read_text(path).split())


def load_official_fivr200k_annotation(
    path: str | Path | None = None, progress: ProgressFn | None = None, offline: bool | None = None
) -> dict[str, dict[str, list[str]]]:
    """The official FIVR-200K annotation JSON (query -> label -> ids), to cross-check the FIVR pickle."""
    path = _user_file(path) if path is not None else annotation_path(
        "fivr200k_official", progress=progress, offline=offline
    )
    try:
        data = json.loads(_read_text(path))
    except ValueError as e:
        raise AnnotationError(f"{path}: not a valid JSON file ({e})") from e
    return _expect(data, dict, path, "a JSON object")


# ---------------------------------------------------------------------------------------------
# One builder per annotation layout


def _fivr(name: str, data: dict, path: Path) -> FIVRBenchmark:
    version = name.removeprefix("FIVR-").lower()
    _require(data, (version, "annotation"), path, name)
    split = _require(data[version], ("queries", "database"), path, f"{name} '{version}'")
    return FIVRBenchmark(
        name=name,
        queries=sorted(split["queries"]),
        database=sorted(split["database"]),  # a set in the file
        source=path,
        version=version,
        annotation={
            q: {label: list(ids) for label, ids in labels.items()} for q, labels in data["annotation"].items()
        },
    )


def _vcdb(data: dict, path: Path, distractors: bool) -> VCDBBenchmark:
    if "positives" in data:  # the original's own layout
        _require(data, ("queries", "positives", "dataset"), path, "VCDB")
        queries = list(dict.fromkeys(data["queries"]))
        positives = {q: frozenset(data["positives"].get(q, ())) for q in queries}
        extra = data["dataset"]
    elif "video_pairs" in data:  # xwen99/temporal_context_aggregation's layout
        _require(data, ("video_pairs", "index", "negs"), path, "VCDB")
        linked: dict[str, set[str]] = {}
        for pair in data["video_pairs"]:
            a, b = pair["videos"]
            if a != b:
                linked.setdefault(a, set()).add(b)
                linked.setdefault(b, set()).add(a)
        # Order the core videos as the file's index does (they come first there).
        queries = [v for v in dict.fromkeys(data["index"]) if v in linked]
        listed = set(queries)
        queries += [v for v in linked if v not in listed]
        positives = {q: frozenset(linked[q]) for q in queries}
        extra = data["negs"]
    else:
        raise AnnotationError(
            f"{path}: not a VCDB annotation file (expected 'queries', 'positives', 'dataset' "
            "or 'video_pairs', 'index', 'negs')"
        )
    core = set(queries)
    # The xwen99 file lists a few distractors twice.
    others = [v for v in dict.fromkeys(extra) if v not in core]
    return VCDBBenchmark(
        name="VCDB",
        queries=queries,
        database=queries + others if distractors else list(queries),
        source=path,
        positives=positives,
        distractors=others,
    )


def _evve(data: dict, path: Path) -> EVVEBenchmark:
    _require(data, ("annotation", "queries", "database"), path, "EVVE")
    return EVVEBenchmark(
        name="EVVE",
        queries=sorted(data["queries"]),
        database=sorted(data["database"]),
        source=path,
        # The third set of each event (null videos) is empty and unused.
        events={e: (frozenset(sets[0]), frozenset(sets[1])) for e, sets in data["annotation"].items()},
    )


def _cc_web(data: dict, path: Path) -> CCWebBenchmark:
    _require(data, ("index", "queries", "ground_truth", "excluded"), path, "CC_WEB_VIDEO")
    queries, ground_truth = list(data["queries"]), list(data["ground_truth"])
    excluded = list(data["excluded"])
    if not len(queries) == len(ground_truth) == len(excluded):
        raise AnnotationError(
            f"{path}: CC_WEB_VIDEO has {len(queries)} queries but {len(ground_truth)} ground-truth "
            f"and {len(excluded)} excluded sets"
        )
    index = {str(v): int(n) for v, n in data["index"].items()}
    return CCWebBenchmark(
        name="CC_WEB_VIDEO",
        queries=queries,
        database=sorted(index),  # the index holds the queries too
        source=path,
        index=index,
        ground_truth=[dict(labels) for labels in ground_truth],
        excluded=[frozenset(x) for x in excluded],
    )


def _require(data: Any, keys: tuple[str, ...], path: Path, what: str) -> Mapping:
    if not isinstance(data, Mapping):
        raise AnnotationError(f"{path}: not a {what} annotation file (expected a dict)")
    missing = [k for k in keys if k not in data]
    if missing:
        raise AnnotationError(
            f"{path}: not a {what} annotation file (missing {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(repr, list(data)[:8]))})"
        )
    return data


@contextmanager
def _layout_errors(path: Path, name: str) -> Iterator[None]:
    """Report a file whose keys are right but whose contents are not as one line, not a traceback."""
    try:
        yield
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise AnnotationError(f"{path}: unexpected {name} annotation layout ({_one_line(e)})") from e


def _expect(value: Any, kind: type, path: Path, what: str) -> Any:
    if not isinstance(value, kind):
        raise AnnotationError(f"{path}: expected {what}, found {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------
# Files: the cache, user paths and safe reading


def annotation_path(key: str, progress: ProgressFn | None = None, offline: bool | None = None) -> Path:
    """Local copy of a registered annotation file: verified cache hit, else a download."""
    try:
        artifact = ANNOTATION_FILES[key]
    except KeyError:
        raise AnnotationError(
            f"unknown annotation file '{key}'; known ones are: {', '.join(ANNOTATION_FILES)}"
        ) from None
    try:
        return fetch(artifact, progress, offline)
    except WeightsError as e:
        # The shared download helpers speak of weights; these are annotations.
        raise AnnotationError(str(e)) from e


def _user_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise AnnotationError(f"{path}: is a directory, expected an annotation file")
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    return path


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read file ({e.strerror or e})") from e


def _read_text(path: Path) -> str:
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text file") from e


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _PlainUnpickler(pickle.Unpickler):
    """Builds only built-in containers and scalars; any other global (a class, a function) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        # "__builtin__" is how pickles written by Python 2 name the builtins module.
        if module in ("builtins", "__builtin__") and name in _PLAIN_BUILTINS:
            return getattr(builtins, name)
        raise _RefusedGlobal(f"{module}.{name}")


def read_pickle(path: str | Path) -> Any:
    """Unpickle a file that may hold only built-in containers and scalars; AnnotationError otherwise."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as e:
        raise AnnotationError(
            f"{path}: refused to unpickle {e.name}: "
            "annotation files may hold only built-in containers and scalars"
        ) from e
    except Exception as e:
        # Damaged pickles fail with many types (UnpicklingError, EOFError, ValueError, ...).
        raise AnnotationError(f"{path}: not a valid pickle file ({_one_line(e)})") from e


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
