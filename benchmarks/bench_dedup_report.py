"""The dedup review page at scale (issue 28): a synthetic dedup result of 1,000 pairs in 300 groups, built with
dedup_document, written with write_page, and opened in headless Chromium.

    python benchmarks/bench_dedup_report.py --folder DIR [--repeats 3] [--no-videos]

The result: 300 groups of 2, 2, 3 and 4 videos in turn (825 videos; every pair of a group a duplicate: 825 pairs),
then 175 contains/overlap pairs linking groups (1,000 pairs), 1-3 matches a pair (seeded). Each video's source is
its own file name, a symbolic link to one of the real clips of ../shared/videos (176x144 to 1280x720), so every
member's thumbnail is decoded from a file of its own, as in a real collection; its facts are that clip's.
`--no-videos` gives every source a path that is not there (the page without thumbnails or players).
Timed: dedup_document (the members' thumbnails; no duration probes: the facts carry the durations), write_page,
the page's and its images' bytes; in Chromium (a fresh browser each time, medians): DOMContentLoaded (every group
and pair row built), the load event, then a link row clicked until both players wait at its first match.
The machine may be shared: each timing is printed with the 1-minute load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "videos"
SEED = 0
GROUP_SIZES, GROUPS, LINKS = (2, 2, 3, 4), 300, 175
RELATIONS = ("duplicate", "contains", "overlap")


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def clip_facts() -> list[tuple[Path, dict]]:
    """The shared clips and their facts (as dedup records them), probed once."""
    from s2vs_cli.media.video import video_info

    found = []
    for path in sorted(p for p in SHARED_VIDEOS.iterdir() if p.suffix in {".mp4", ".mkv"}):
        info = video_info(path)
        found.append((path, {"duration": info["duration"], "width": info.get("width"), "height": info.get("height"),
                             "fps": info.get("fps"), "bitrate": None, "size": path.stat().st_size}))
    return found


def synthetic_result(folder: Path, with_videos: bool) -> dict:
    """1,000 pairs in 300 groups, each video's source a link to a shared clip (or a path not there)."""
    rng = np.random.default_rng(SEED)
    clips = clip_facts()
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    groups, pairs, number = [], [], 0
    for g in range(GROUPS):
        members = [f"v{number + k:04d}" for k in range(GROUP_SIZES[g % len(GROUP_SIZES)])]
        number += len(members)
        facts = {}
        for video_id in members:
            clip, clip_fact = clips[int(video_id[1:]) % len(clips)]
            source = videos / f"{video_id}{clip.suffix}"
            if with_videos and not source.exists():
                source.symlink_to(clip)
            facts[video_id] = {**clip_fact, "source": str(source if with_videos else folder / "gone" / source.name)}
        groups.append({"members": members, "keep": members[0], "facts": facts, "links": []})
        pairs += [_pair(rng, a, b, "duplicate", facts[a]["duration"], facts[b]["duration"])
                  for i, a in enumerate(members) for b in members[i + 1:]]
    for _ in range(LINKS):
        first, second = sorted(rng.choice(GROUPS, 2, replace=False))
        a, b = groups[first]["members"][-1], groups[second]["members"][0]
        relation = "contains" if rng.random() < 0.5 else "overlap"
        pair = _pair(rng, a, b, relation, groups[first]["facts"][a]["duration"], groups[second]["facts"][b]["duration"])
        pairs.append(pair | ({"container": a} if relation == "contains" else {}))
        groups[first]["links"].append(int(second))
        groups[second]["links"].append(int(first))
    return {"groups": groups, "pairs": pairs, "random_weights": True,
            "settings": {"keep": "resolution", "features_only": True, "min_similarity": 0.5}}


def _pair(rng, a: str, b: str, relation: str, a_length: float, b_length: float) -> dict:
    matches = []
    for k in range(int(rng.integers(1, 4))):
        start_a, start_b = rng.uniform(0, a_length * 0.6), rng.uniform(0, b_length * 0.6)
        span = min(a_length - start_a, b_length - start_b) * rng.uniform(0.2, 1.0)
        matches.append({"a_start": round(start_a, 2), "a_end": round(start_a + span, 2), "b_start": round(start_b, 2),
                        "b_end": round(start_b + span, 2), "score": round(float(rng.uniform(0.5, 1.0)), 4)})
    coverage = {"a": round(float(rng.uniform(0.8, 1.0)), 4), "b": round(float(rng.uniform(0.3, 1.0)), 4)}
    return {"a": a, "b": b, "similarity": round(float(rng.uniform(0.4, 1.0)), 4), "relation": relation,
            "coverage": coverage, "matches": matches}


NAVIGATION = """
const done = arguments[arguments.length - 1];
const wait = () => {
  const nav = performance.getEntriesByType("navigation")[0];
  if (!nav || !nav.loadEventEnd) return setTimeout(wait, 10);
  done({dom: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
        groups: document.querySelectorAll("section.group").length, rows: document.querySelectorAll("tr.hit").length,
        members: document.querySelectorAll("figure.member").length});
};
wait();
"""
# Scroll to a link row in the middle and click it; wait until both players can show its first match's start.
OPEN_LINK = """
const done = arguments[arguments.length - 1];
const rows = document.querySelectorAll("#links tr.hit");
const row = rows[Math.floor(rows.length / 2)];
row.scrollIntoView({block: "start"});
const started = performance.now();
row.click();
const built = performance.now() - started;
const pair = row.nextElementSibling.querySelector("div.pair");
const first = pair.querySelector(".match");
const q = pair.querySelector("video.player-query"), t = pair.querySelector("video.player-target");
const wait = () => {
  const elapsed = performance.now() - started;
  if (!q || !t || q.error || t.error || elapsed > 20000) return done({built, cued: NaN});
  const there = (v, s) => !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - s) < 0.5;
  const cued = there(q, Number(first.dataset.start)) && there(t, Number(first.dataset.targetStart));
  if (cued) return done({built, cued: elapsed});
  setTimeout(wait, 5);
};
wait();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-videos", action="store_true")
    args = parser.parse_args()
    if not SHARED_VIDEOS.is_dir():
        sys.exit(f"{SHARED_VIDEOS}: the shared clips are needed")
    sys.path.insert(0, str(ROOT))
    from bench_report import browser_runs
    from s2vs_cli.report.dedup_review import dedup_document
    from s2vs_cli.report.page import write_page

    result = synthetic_result(args.folder, not args.no_videos)
    relations = [p["relation"] for p in result["pairs"]]
    print(f"result: {len(result['groups'])} groups, {sum(len(g['members']) for g in result['groups'])} videos, "
          f"{len(relations)} pairs ({', '.join(f'{relations.count(r)} {r}' for r in RELATIONS)}), "
          f"{sum(len(p['matches']) for p in result['pairs'])} matches")
    started = time.perf_counter()
    document = dedup_document(result)
    built = time.perf_counter() - started
    started = time.perf_counter()
    page = write_page(document, args.folder / "dups.html")
    written = time.perf_counter() - started
    images = list((args.folder / "dups_files").iterdir()) if (args.folder / "dups_files").is_dir() else []
    members = [member for group in document["groups"] for member in group["members"]]
    thumbs = sum(m["thumb"] is not None and m["thumb"].image is not None for m in members)
    print(f"dedup_document {built:.2f} s ({thumbs} thumbnails decoded), write_page {written:.2f} s ({load()}); "
          f"page {page.stat().st_size / 1e6:.2f} MB, {len(images)} image files (identical thumbnails are one file) "
          f"{sum(p.stat().st_size for p in images) / 1e6:.2f} MB")

    runs = browser_runs(page, [NAVIGATION, OPEN_LINK], args.repeats)
    # A page without videos has no players to wait for: no time (None) for that step.
    median = {key: statistics.median(values) if (values := [r[key] for r in runs if r[key] is not None]) else
              float("nan") for key in runs[0]}
    print(f"Chromium, median of {args.repeats} ({load()}): {runs[0]['groups']} groups, {runs[0]['members']} member "
          f"cards, {runs[0]['rows']:,} pair rows; DOMContentLoaded {median['dom']:.0f} ms, "
          f"load {median['load']:.0f} ms; "
          f"a link opened: view built in {median['built']:.0f} ms, both players at its first match after "
          f"{median['cued']:.0f} ms; JavaScript errors: {max(r['errors'] for r in runs)}")


if __name__ == "__main__":
    main()
