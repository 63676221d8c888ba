"""The review document of `s2vs dedup --report`: the collection's groups of duplicates and the pairs between them.

Built from the dedup result in its JSON form (`groups`, `pairs`, `settings`, `random_weights`), so a page can be
drawn from a saved duplicates.json as well as from a run. Each group shows its members (a thumbnail from the
source video, its facts, the suggested keeper marked) and its pairs. A video that only contains or overlaps others
is a group of one in the result: no duplicate and nothing to keep, it is a card among the videos in no group. Groups
are numbered as the result's `links`, the terminal table and groups.csv number them (0, 1, ...). Pairs whose videos
lie in different groups (one contains the other, or they overlap) are the links between groups, listed after them. Every pair opens into
the review pages' pair view: both videos side by side, waiting at the first match, each match a click away
(assets/dedup.js draws the page, review.js the pair view).

Every pair can be marked "copy" or "not a copy" and every member "keep this one" (assets/dedup_marks.js); the
page downloads the marks as decisions.json (the format of storage/decisions.py, `dedup --decisions`), merged with
the decisions the result was made with (its `decisions`, embedded as the document's `decisions`). The document's
`sources` give the download each video's source path.

A video's file is the source its facts name, else the one its feature file recorded (`stores`), else (a file moved
since) the one found by id under a videos folder (`videos`); a file not found shows as a placeholder naming the
path recorded.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import FeatureStoreError
from ..progress import SILENT, Progress
from ..storage.decisions import DecisionsError, decisions_from
from ..storage.store import FeatureStore
from .compare_review import FEATURES_ONLY_NOTE, VideoDurations
from .document import finish_document, new_document, pair_entry
from .page import write_page
from .thumbnails import ThumbnailBatch
from .video_lookup import VideoFinder

RELATIONS = ("duplicate", "contains", "overlap")
FACTS = ("duration", "width", "height", "fps", "bitrate", "size")
THUMBNAIL_AT = 0.5  # share of a member's length where its thumbnail is taken: past any intro, the same moment
#                     in every copy of a group, so the cards show at a glance that they hold one video
SHOWN_MISSING = 5   # ids named in the note on sources not at hand
# Coverage is of the time left in matching (jobs/dedup.py): without this, a duplicate whose matches span 8 of 14 s
# (a 4 s intro left out) reads "80%" as a wrong sum.
COVERAGE_NOTE = ("coverage: the share of each video's time left in matching; frames common to many videos (intros, "
                 "logos) and low-information ones (black, flat colour, fades) are left out (--keep-common-frames "
                 "keeps them)")


def dedup_document(result: Mapping, stores: Sequence[str | Path] = (), *, videos: VideoFinder | None = None,
                   progress: Progress = SILENT) -> dict:
    """The review document of a dedup `result` (its JSON form), its thumbnails decoded; `stores` (the feature
    files it ran on) name the source file of a video the result gives no facts of; `videos` finds by id a file
    no longer where it was recorded."""
    builder = _DedupReview(result, stores, videos)
    return finish_document(builder.document(), builder.thumbnails, progress)


def write_dedup_report(path: str | Path, result: Mapping, stores: Sequence[str | Path] = (), *,
                       videos: VideoFinder | None = None, progress: Progress = SILENT) -> Path:
    """Write the review page of a dedup `result` to `path` (its thumbnails in `<stem>_files/` beside it); its path."""
    return write_page(dedup_document(result, stores, videos=videos, progress=progress), path)


class _DedupReview:
    """Builds the groups' and pairs' entries, finding each video's file once and asking for member thumbnails."""

    def __init__(self, result: Mapping, stores: Sequence[str | Path], videos: VideoFinder | None):
        self.result = result
        self.stores = [Path(store) for store in stores]
        self.videos = videos
        self.thumbnails = ThumbnailBatch()
        self.notes: list[str] = []
        self._duration = VideoDurations()  # each file probed once
        self.group_of: dict[str, int] = {}  # video id -> its group's number: its index in the result's groups
        self.facts: dict[str, Mapping] = {}
        for number, group in enumerate(result["groups"]):
            for member in group["members"]:
                self.group_of[str(member)] = number
            self.facts.update({str(video_id): facts for video_id, facts in (group.get("facts") or {}).items()})
        self.sources = self._sources()
        self.files: dict[str, Path | None] = {}  # id -> its file, looked for once
        self.not_found: dict[str, str | None] = {}  # id -> its source as recorded (None: none recorded)

    def document(self) -> dict:
        """The whole document: counts, settings, groups with their members and pairs, the links between groups."""
        groups = [self._group(number, group) for number, group in enumerate(self.result["groups"])]
        pairs, links = [], []
        for index, pair in enumerate(self.result["pairs"]):
            entry = self._pair(pair)
            pairs.append(entry)
            group_a, group_b = entry["groups"]
            if group_a is not None and group_a == group_b:
                groups[group_a]["pairs"].append(index)
            else:
                links.append(index)
        settings = dict(self.result.get("settings") or {})
        relations = [pair["relation"] for pair in pairs]
        duplicated = [group for group in groups if not group["single"]]
        counts = {"groups": len(duplicated), "videos": sum(len(group["members"]) for group in duplicated),
                  "removable": sum(len(group["members"]) - 1 for group in duplicated),
                  "single": len(groups) - len(duplicated), "pairs": len(pairs),
                  **{relation: relations.count(relation) for relation in RELATIONS}, "links": len(links)}
        notes = self.notes + self._missing_note()
        if settings.get("features_only"):
            notes.append(FEATURES_ONLY_NOTE)
        if settings.get("keep_common_frames") is False:
            notes.append(COVERAGE_NOTE)
        model = settings.get("model") or ("features only" if settings.get("features_only") else "")  # "": not shown
        where = f" in {', '.join(store.name for store in self.stores)}" if self.stores else ""
        title = (f"dedup: {counts['groups']} {'group' if counts['groups'] == 1 else 'groups'} of duplicates, "
                 f"{counts['pairs']} {'pair' if counts['pairs'] == 1 else 'pairs'}{where}")
        document = new_document("dedup", title, model=str(model), extractor=settings.get("extractor"),
                                random_weights=bool(self.result.get("random_weights")), notes=notes)
        document.update(counts=counts, settings=settings, groups=groups, pairs=pairs, links=links,
                        decisions=carried_decisions(self.result), sources=dict(sorted(self.sources.items())))
        return document

    # --- pieces ---------------------------------------------------------------------------------------------

    def _group(self, number: int, group: Mapping) -> dict:
        single = len(group["members"]) == 1  # no duplicate: its keeper is no suggestion
        keep = group.get("keep")
        keep = None if keep is None or single else str(keep)
        return {"number": number, "keep": keep, "single": single,
                "members": [self._member(str(video_id), str(video_id) == keep) for video_id in group["members"]],
                "links": sorted(int(index) for index in group.get("links") or ()), "pairs": []}

    def _member(self, video_id: str, keep: bool) -> dict:
        facts = self.facts.get(video_id) or {}
        video = self._video(video_id)
        duration = self._length(video_id)
        thumb = None if video is None else self.thumbnails.request(video, (duration or 0.0) * THUMBNAIL_AT)
        return {"id": video_id, "keep": keep, "source": self.sources.get(video_id), "video": video, "thumb": thumb,
                "facts": {key: facts.get(key) for key in FACTS}}

    def _pair(self, pair: Mapping) -> dict:
        a, b = str(pair["a"]), str(pair["b"])
        a_video, b_video = self._video(a), self._video(b)
        # The pair view plays `a` where the other pages play the query, `b` where they play the target.
        matches = [{"query_start": m["a_start"], "query_end": m["a_end"], "target_start": m["b_start"],
                    "target_end": m["b_end"], "score": m.get("score")} for m in pair.get("matches") or ()]
        entry = pair_entry(b, pair["similarity"], matches, target_video=b_video, query_video=a_video,
                           target_duration=self._length(b), thumbnails=None, heatmap=None,
                           verdict=pair.get("verdict"))
        coverage = pair.get("coverage") or {}
        entry.update({"a": a, "a_video": a_video, "a_duration": self._length(a),
                      # the recorded path, shown in the player's place when the file is not there
                      "a_source": self.sources.get(a) if a_video is None else None,
                      "target_source": self.sources.get(b) if b_video is None else None,
                      "relation": str(pair["relation"]), "container": pair.get("container"),
                      "coverage": {side: _fraction(coverage.get(side)) for side in ("a", "b")},
                      "groups": [self.group_of.get(a), self.group_of.get(b)]})
        return entry

    def _video(self, video_id: str) -> Path | None:
        """The video's file: its source when still there, else found under the videos folder (else None, and the
        id noted)."""
        if video_id not in self.files:
            source = self.sources.get(video_id)
            found = Path(source) if source and Path(source).is_file() else None
            if found is None and self.videos is not None:
                found = self.videos.find(video_id)
            self.files[video_id] = found
            if found is None:
                self.not_found[video_id] = source
        return self.files[video_id]

    def _length(self, video_id: str) -> float | None:
        duration = (self.facts.get(video_id) or {}).get("duration")
        return float(duration) if duration else self._duration(self._video(video_id))

    def _sources(self) -> dict[str, str | None]:
        """Each video's source path: as its facts name it, else as the first feature file holding it recorded."""
        ids = {str(v) for pair in self.result["pairs"] for v in (pair["a"], pair["b"])} | set(self.group_of)
        sources = {video_id: str(self.facts[video_id]["source"]) for video_id in ids
                   if (self.facts.get(video_id) or {}).get("source")}
        wanted = sorted(ids - sources.keys())
        for store_path in self.stores:
            if not wanted:
                break
            try:
                with FeatureStore(store_path) as store:
                    held = [video_id for video_id in wanted if video_id in store]
                    sources.update({video_id: store.source(video_id) for video_id in held})
            except FeatureStoreError as error:
                self.notes.append(f"sources not read: {error}")
                continue
            wanted = [video_id for video_id in wanted if video_id not in sources]
        return sources

    def _missing_note(self) -> list[str]:
        if not self.not_found:
            return []
        missing = sorted(self.not_found)
        shown = ", ".join(missing[:SHOWN_MISSING])
        more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
        unrecorded = sum(source is None for source in self.not_found.values())
        why = f" ({unrecorded} with no source recorded)" if unrecorded else ""
        return [f"{len(missing)} video{'s' if len(missing) > 1 else ''} not at hand{why}: {shown}{more}; their "
                "cards and players show the path recorded"]


def carried_decisions(result: Mapping) -> dict:
    """The decisions a dedup `result` was made with (its `decisions`: videos, pairs, keep), as the page merges its
    marks into them; empty lists when it holds none. One not in the format is a ValueError naming the entry."""
    if not result.get("decisions"):
        return {"videos": {}, "pairs": [], "keep": []}
    try:
        decisions = decisions_from(result["decisions"], "decisions")
    except DecisionsError as error:  # the result is what is malformed (saved_results.py names its file)
        raise ValueError(str(error)) from None
    saved = decisions.as_dict()
    return {"videos": dict(decisions.videos), "pairs": saved["pairs"], "keep": saved["keep"]}


def _fraction(value: object) -> float | None:
    return None if value is None else float(value)
