"""A person's decisions about pairs of videos (`decisions.json`), shared by dedup, search, calibrate and the
dedup page: pairs judged a copy or not a copy, and the videos chosen to keep.

The file (UTF-8 JSON, README "Decisions"):
    {"format": "s2vs-decisions", "version": 1,
     "videos": {id: {"source": path or null}},          every id the file names, as it was when decided
     "pairs": [{"a": id, "b": id, "label": "copy" | "not_copy", "note": text, "at": ISO-8601 time}],
     "keep": [id]}                                       `note`, `at` and `keep` are optional
A pair is unordered (but calibrate scores its `a` as the query, as a ground truth's); the same pair twice with
the same label is one decision, with both labels an error. Every error is one line naming the file and the
entry (`pairs[3]`, `keep[0]`). Decisions about videos a collection no longer holds are kept (saved again whole)
and only counted (`Decisions.not_in`).
Library code: the standard library and the package's errors.
"""
from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomically
from ..errors import ConfigError
from ..json_file import read_json

FORMAT, VERSION = "s2vs-decisions", 1
COPY, NOT_COPY = "copy", "not_copy"
LABELS = (COPY, NOT_COPY)
TOP_KEYS = ("format", "version", "videos", "pairs", "keep")
PAIR_KEYS, PAIR_EXTRAS = ("a", "b", "label"), ("note", "at")


class DecisionsError(ConfigError):
    """A decisions file that is not in the format: one line naming the file and the entry (exit 2)."""


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The unordered pair (a, b) as one key: its ids sorted."""
    return (a, b) if a <= b else (b, a)


@dataclass
class Decisions:
    """Pairs judged copy / not_copy (by their sorted ids), their notes, the ids to keep and every id's source."""

    videos: dict[str, str | None] = field(default_factory=dict)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)
    extras: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # a pair's note and at
    keep: list[str] = field(default_factory=list)
    # each pair as the file wrote it (a, b): calibrate scores a as the query, as a ground truth's (default: sorted)
    given: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def label(self, a: str, b: str) -> str | None:
        """The decision about videos a and b (either order): copy, not_copy or None."""
        return self.labels.get(pair_key(a, b))

    def pairs(self, label: str) -> list[tuple[str, str]]:
        """The pairs (sorted ids) with this label, in the file's order."""
        return [pair for pair, given in self.labels.items() if given == label]

    def not_in(self, ids: Collection[str]) -> list[dict[str, Any]]:
        """The entries naming a video not in `ids` (a collection): pairs as {"a", "b", "label"}, keeps as {"keep"}."""
        missing = [{"a": a, "b": b, "label": label} for (a, b), label in self.labels.items()
                   if a not in ids or b not in ids]
        return missing + [{"keep": video} for video in self.keep if video not in ids]

    def as_ground_truth(self, ids: Collection[str]) -> dict[str, Any]:
        """The pairs of two videos in `ids` as a custom ground truth (evaluate's layout, datasets/custom.py): a
        pair's first id a query, its second in the database, copy a positive, not_copy a negative, nothing else
        judged (every query lists its negatives)."""
        judged = [(*self.given.get(pair, pair), label) for pair, label in self.labels.items()
                  if pair[0] in ids and pair[1] in ids]
        queries = list(dict.fromkeys(a for a, _, _ in judged))
        truth = {"queries": queries, "database": list(dict.fromkeys(b for _, b, _ in judged)),
                 "positives": {query: [] for query in queries}, "negatives": {query: [] for query in queries}}
        for a, b, label in judged:
            truth["positives" if label == COPY else "negatives"][a].append(b)
        return truth

    def merged(self, other: Decisions) -> Decisions:
        """These decisions with `other`'s added; where both judge a pair (or know a source), `other`'s win."""
        videos = self.videos | {video: source for video, source in other.videos.items()
                                if source is not None or video not in self.videos}
        labels = self.labels | other.labels
        # a pair judged again keeps only the new judgement's note and time
        extras = {pair: notes for pair, notes in self.extras.items() if pair not in other.labels} | other.extras
        return Decisions(videos, labels, extras, list(dict.fromkeys([*self.keep, *other.keep])),
                         self.given | other.given)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, in the file's format."""
        return {"format": FORMAT, "version": VERSION,
                "videos": {video: {"source": source} for video, source in self.videos.items()},
                "pairs": [dict(zip("ab", self.given.get(pair, pair)), label=label) | self.extras.get(pair, {})
                          for pair, label in self.labels.items()],
                "keep": list(self.keep)}


def save_decisions(path: str | Path, decisions: Decisions) -> None:
    """Write `decisions` to `path` whole or not at all."""
    write_text_atomically(path, json.dumps(decisions.as_dict(), indent=1, ensure_ascii=False) + "\n")


def load_decisions(path: str | Path) -> Decisions:
    """The decisions in `path`; DecisionsError (one line naming the file and the entry) when not in the format."""
    return decisions_from(read_json(path, "decisions file", DecisionsError), str(path))


def decisions_from(data: Any, where: str) -> Decisions:
    """The decisions a file's JSON holds (`where` names it in errors: DecisionsError, one line naming the entry)."""
    def fail(message: str) -> DecisionsError:
        return DecisionsError(f"{where}: {message}")

    if not isinstance(data, dict):
        raise fail(f"not a decisions file (a JSON object with format '{FORMAT}')")
    _known_keys(data, TOP_KEYS, "", fail)
    if data.get("format") != FORMAT:
        raise fail(f"format is {data.get('format')!r}, not '{FORMAT}'")
    if data.get("version") != VERSION or isinstance(data.get("version"), bool):
        raise fail(f"version {data.get('version')!r} is not one this s2vs reads ({VERSION})")
    for key in ("videos", "pairs"):
        if key not in data:
            raise fail(f"no '{key}'")
    decisions = Decisions(videos=_videos(data["videos"], fail))
    first_entry: dict[tuple[str, str], int] = {}  # where each pair was first judged, for the error of a second
    for n, entry in enumerate(_listed(data["pairs"], "pairs", fail)):
        pair = _pair(decisions, entry, f"pairs[{n}]", fail, first_entry)
        first_entry.setdefault(pair, n)
    for n, video in enumerate(_listed(data.get("keep", []), "keep", fail)):
        _known_id(decisions, video, f"keep[{n}]", fail)
        if video not in decisions.keep:
            decisions.keep.append(video)
    return decisions


def _known_keys(entry: dict, allowed: Iterable[str], where: str, fail) -> None:
    """Refuse a key the format does not have (a typo would otherwise be silently ignored)."""
    for key in entry:
        if key not in allowed:
            raise fail(f"{where}unknown key {key!r} ({', '.join(allowed)})")


def _listed(value: Any, key: str, fail) -> list:
    if not isinstance(value, list):
        raise fail(f"'{key}' must be a list, got {type(value).__name__}")
    return value


def _videos(value: Any, fail) -> dict[str, str | None]:
    """The `videos` table: id -> source path or None."""
    if not isinstance(value, dict):
        raise fail(f"'videos' must be an object of id: {{\"source\": path or null}}, got {type(value).__name__}")
    videos = {}
    for video, entry in value.items():
        where = f"videos[{video!r}]"
        if not video:
            raise fail(f"{where}: an empty id")
        if not isinstance(entry, dict) or "source" not in entry:
            raise fail(f"{where}: must be {{\"source\": path or null}}")
        _known_keys(entry, ("source",), f"{where}: ", fail)
        if entry["source"] is not None and not isinstance(entry["source"], str):
            raise fail(f"{where}: source must be a path or null, got {type(entry['source']).__name__}")
        videos[video] = entry["source"]
    return videos


def _known_id(decisions: Decisions, video: Any, where: str, fail) -> None:
    if not isinstance(video, str):
        raise fail(f"{where}: an id must be text, got {type(video).__name__}")
    if video not in decisions.videos:
        raise fail(f"{where}: unknown id {video!r} (not in the file's videos)")


def _pair(decisions: Decisions, entry: Any, where: str, fail, first_entry: dict[tuple[str, str], int]
          ) -> tuple[str, str]:
    """Add one `pairs` entry to `decisions`, checked; its pair key."""
    if not isinstance(entry, dict):
        raise fail(f"{where}: must be an object {{\"a\", \"b\", \"label\"}}, got {type(entry).__name__}")
    _known_keys(entry, PAIR_KEYS + PAIR_EXTRAS, f"{where}: ", fail)
    for key in PAIR_KEYS:
        if key not in entry:
            raise fail(f"{where}: no '{key}'")
    label = entry["label"]
    if label not in LABELS or not isinstance(label, str):
        raise fail(f"{where}: unknown label {label!r} (copy or not_copy)")
    for key in ("a", "b"):
        _known_id(decisions, entry[key], where, fail)
    if entry["a"] == entry["b"]:
        raise fail(f"{where}: a pair of {entry['a']!r} with itself")
    extras = {key: entry[key] for key in PAIR_EXTRAS if key in entry}
    if not all(isinstance(text, str) for text in extras.values()):
        raise fail(f"{where}: note and at must be text")
    if "at" in extras:
        try:
            datetime.fromisoformat(extras["at"].replace("Z", "+00:00"))
        except ValueError:
            raise fail(f"{where}: at {extras['at']!r} is not an ISO-8601 time") from None
    pair = pair_key(entry["a"], entry["b"])
    earlier = decisions.labels.get(pair)
    if earlier is not None and earlier != label:
        raise fail(f"{where}: {entry['a']!r} and {entry['b']!r} are marked both {earlier} "
                   f"(pairs[{first_entry[pair]}]) and {label}")
    decisions.labels[pair] = label
    decisions.given.setdefault(pair, (entry["a"], entry["b"]))
    if extras:
        decisions.extras[pair] = extras
    return pair
