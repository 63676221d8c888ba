"""Shared boilerplate is not a copy (issue 28): pair precision and recall with and without leaving common frames out.

    python benchmarks/make_boilerplate_collection.py --out DIR
    s2vs extract-features DIR/videos -o DIR/features.h5 --backbone-weights random --pca random --precision fp32 --fps 2
    python benchmarks/bench_boilerplate.py --folder DIR [--features DIR/features.h5]

Every pair of the collection is scored features-only as `s2vs compare` scores a pair (scoring/pair.py
compare_features: Chamfer similarity, matches located by localization.locate), both directions (the pair's
similarity is their mean, as dedup's), once on every frame and once without the frames the collection's
CommonFrames leaves out (scoring/common_frames.py, fitted through the collection's search index as `search`,
`compare --collection` and dedup fit it). A pair is predicted a copy
- "matches": when located matches exist in either direction (compare's rule: parts of >= 2 s);
- "matches_above_floor": when its best located match scores at least the floor of best F1 on every frame
  (compare's --min-match-score, chosen on this very collection for the baseline: its most favourable
  setting), applied to both;
- "threshold": when its similarity reaches the threshold of best F1 on every frame (chosen likewise).
Also the average precision of the pairs ranked by similarity (no threshold). Prints one JSON object.

Seeded random weights put every frame within cosine 0.99 of every other (one shared direction), so every pair
"matches"; trained whitening removes the features' mean. So by default (`--centred`, undo with
`--no-centred`) the collection's mean region direction is projected out of every region vector first, written
to FOLDER/features-centred.h5, and everything above runs on that file.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from s2vs_cli.jobs.compare import without_common
from s2vs_cli.scoring.common_frames_index import common_frames_of_collection
from s2vs_cli.scoring.pair import VideoFeatures, compare_features, stored_video_features
from s2vs_cli.scoring.common_frames import centred, mean_direction
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import FeatureStore


def write_centred(source: Path, target: Path) -> Path:
    """`source`'s videos with the mean direction of all their region vectors projected out, into `target`."""
    with FeatureStore(source) as store:
        videos = {i: store.read(i) for i in store.ids()}
        identity = store.identity
    direction = mean_direction(np.concatenate([np.asarray(v.features, np.float32).reshape(-1, v.features.shape[-1])
                                               for v in videos.values()]))
    target.unlink(missing_ok=True)
    parts = target.with_name(target.name + ".parts")
    with PartWriter(parts, identity, "bench_boilerplate", dtype="float32") as writer:
        for video_id, record in videos.items():
            writer.add(video_id, centred(record.features, direction), np.asarray(record.timestamps, dtype=float))
    merge_parts(target, writer.written, identity, "bench_boilerplate")
    return target


def pair_scores(videos: dict[str, VideoFeatures]) -> dict[tuple[str, str], tuple[float, float]]:
    """(similarity: mean of both directions, the best located match's score in either: -inf without one) of
    every pair of ids, sorted."""
    scores = {}
    for a, b in itertools.combinations(sorted(videos), 2):
        forward = compare_features(videos[a], videos[b], None)
        backward = compare_features(videos[b], videos[a], None)
        best = max((m.score for m in forward.matches + backward.matches), default=-np.inf)
        scores[(a, b)] = ((forward.similarity + backward.similarity) / 2, float(best))
    return scores


def precision_recall(predicted: set, truth: set) -> dict:
    hits = len(predicted & truth)
    return {"precision": round(hits / len(predicted), 3) if predicted else None,
            "recall": round(hits / len(truth), 3), "predicted": len(predicted), "true_found": hits}


def average_precision(scores: dict, truth: set, which: int = 0) -> float:
    ranked = sorted(scores, key=lambda pair: -scores[pair][which])
    hits, total = 0, 0.0
    for rank, pair in enumerate(ranked, 1):
        if pair in truth:
            hits += 1
            total += hits / rank
    return round(total / len(truth), 4)


def best_threshold(scores: dict, truth: set, which: int = 0) -> float:
    """The threshold on score `which` (0: similarity, 1: best match) of best F1 (ties: the higher threshold)."""
    best, chosen = -1.0, 1.0
    for threshold in sorted({s[which] for s in scores.values() if np.isfinite(s[which])}):
        predicted = {p for p, s in scores.items() if s[which] >= threshold}
        hits = len(predicted & truth)
        f1 = 2 * hits / (len(predicted) + len(truth))
        if f1 >= best:
            best, chosen = f1, threshold
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="what make_boilerplate_collection.py wrote")
    parser.add_argument("--features", type=Path, help="its features (default FOLDER/features.h5)")
    parser.add_argument("--centred", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    features = args.features or args.folder / "features.h5"
    if args.centred:
        features = write_centred(features, args.folder / "features-centred.h5")
    truth = {tuple(sorted(pair)) for pair in json.loads((args.folder / "truth.json").read_text())["pairs"]}
    started = time.perf_counter()
    common = common_frames_of_collection(features)
    fitted = time.perf_counter() - started
    with FeatureStore(features) as store:
        fps = store.identity.fps if store.identity is not None else 1.0
        every = {i: stored_video_features(store, i, fps) for i in store.ids()}
        kept, left_out = {}, {}
        for i in store.ids():
            kept[i], left_out[i] = without_common(stored_video_features(store, i, fps), common)
    result = {"features": str(features), "videos": len(every), "true_pairs": len(truth), "pairs": len(every) * (len(every) - 1) // 2,
              "prototypes": len(common.prototypes), "fit_seconds": round(fitted, 2),
              "left_out_frames": left_out, "frames": {i: len(v.timestamps) for i, v in every.items()}}
    before, after = pair_scores(every), pair_scores(kept)
    threshold, match_floor = best_threshold(before, truth), best_threshold(before, truth, 1)
    result |= {"threshold": round(threshold, 4), "min_match_score": round(match_floor, 4)}
    for name, scores in (("every_frame", before), ("common_left_out", after)):
        result[name] = {
            "matches": precision_recall({p for p, (_, m) in scores.items() if np.isfinite(m)}, truth),
            "matches_above_floor": precision_recall({p for p, (_, m) in scores.items() if m >= match_floor},
                                                    truth),
            "threshold": precision_recall({p for p, (s, _) in scores.items() if s >= threshold}, truth),
            "average_precision": average_precision(scores, truth),
            "average_precision_by_match": average_precision(scores, truth, 1),
            "true_pairs": {f"{a}-{b}": [round(v, 4) for v in scores[(a, b)]] for a, b in sorted(truth)},
            "false_above_floor": sorted(f"{a}-{b}" for (a, b), (_, m) in scores.items()
                                        if m >= match_floor and (a, b) not in truth),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
