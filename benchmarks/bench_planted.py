"""Every copied part on planted excerpts (issue 14): segment precision and recall of `compare`'s matches.

    python benchmarks/bench_planted.py [--videos ../shared/videos] [--pairs 12] [--backbone-seeds 0]

Each pair (tests/test_planted.py draws it from a seed) is a 29-s target strung from three clips of
different content, and a query holding 2-3 excerpts of it (4-6 s each, at random places of the target),
each re-encoded at CRF 42, colour-shifted or centre-cropped to 70%, between 2-5 s of unrelated clips.
Features only, at 1 fps, with a seeded random ResNet-50 and a whitening fitted the way `s2vs fit-pca`
fits it (jobs/fit_pca.py) on the un-whitened region vectors of every clip in ../shared/videos. The
same pairs are also scored with the whitening tests/test_planted.py uses (fitted on the pair itself, 128-d).

Figures: planted excerpts found (a match covers at least half of its time range on both videos), matches
lying mostly outside every planted excerpt, segment precision/recall/F1 as `s2vs evaluate` computes them
(time overlap on each video, geometric mean of the two), and the same for `segment` (the best match only).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_planted import TEST_DIMS, draw_pair, fit_whitening, missed, spurious  # noqa: E402

from s2vs_cli.datasets import segment_precision_recall  # noqa: E402
from s2vs_cli.scoring.pair import as_video_features, compare_features, extract_video_features  # noqa: E402
from s2vs_cli.jobs.fit_pca import ScatterAccumulator  # noqa: E402
from s2vs_cli.jobs.fit_pca import fit_whitening as fit_pca_whitening  # noqa: E402
from s2vs_cli.models.loading import load_extractor  # noqa: E402
from s2vs_cli.models.whitening import PCAWhitening  # noqa: E402


def shared_whitening(videos: Path, extractor) -> tuple[PCAWhitening, int]:
    """fit-pca's whitening of the un-whitened region vectors of every clip in `videos` (512-d)."""
    accumulator = ScatterAccumulator(extractor.dims)
    for path in sorted(p for p in videos.iterdir() if p.suffix in (".mp4", ".mkv")):
        features = extract_video_features(path, extractor).features
        accumulator.add(features.reshape(-1, features.shape[-1]))
    fitted = fit_pca_whitening(accumulator)
    return PCAWhitening.from_eigen(fitted["mean"], fitted["d"], fitted["V"]), accumulator.count


def bounds(items) -> list[tuple[float, float, float, float]]:
    return [(i.query_start, i.query_end, i.target_start, i.target_end) for i in items]


def report(name: str, outcomes: list[tuple], seconds: list[float]) -> None:
    """outcomes: (pair key, planted, comparison) for every pair."""
    planted = [p for _, pair, _ in outcomes for p in pair.planted]
    missing = [p for _, pair, c in outcomes for p in pair.planted if missed(p, c.matches)]
    wrong = [m for _, pair, c in outcomes for m in c.matches if spurious(m, pair.planted)]
    matches = sum(len(c.matches) for _, _, c in outcomes)
    truth = {key: bounds(pair.planted) for key, pair, _ in outcomes}
    every = segment_precision_recall({key: bounds(m.times for m in c.matches) for key, _, c in outcomes}, truth)
    best = segment_precision_recall({key: bounds([c.segment]) for key, _, c in outcomes}, truth)
    by_edit = Counter(p.edit for p in planted)
    missed_by_edit = Counter(p.edit for p in missing)
    print(f"{name}: excerpts found {len(planted) - len(missing)}/{len(planted)} "
          f"({', '.join(f'{e} {by_edit[e] - missed_by_edit[e]}/{by_edit[e]}' for e in sorted(by_edit))}); "
          f"matches {matches}, mostly outside the planted ones {len(wrong)}")
    print(f"  matches: segment precision {every['segment_precision']:.3f}, recall {every['segment_recall']:.3f}, "
          f"F1 {every['segment_F1']:.3f}")
    print(f"  best segment only: precision {best['segment_precision']:.3f}, recall {best['segment_recall']:.3f}, "
          f"F1 {best['segment_F1']:.3f}")
    print(f"  locating the matches: median {np.median(seconds) * 1e3:.1f} ms a pair")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    parser.add_argument("--pairs", type=int, default=12, help="planted pairs, drawn from seeds 0..N-1")
    parser.add_argument("--backbone-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="print every pair's planted parts and matches")
    args = parser.parse_args()
    from s2vs_cli.scoring.localization import locate_matches

    with tempfile.TemporaryDirectory() as tmp:
        pairs = []
        for seed in range(args.pairs):
            folder = Path(tmp, f"pair{seed}")
            folder.mkdir()
            pairs.append(draw_pair(args.videos, folder, seed))
        for backbone_seed in args.backbone_seeds:
            extractor = load_extractor("random", "none", "cpu", seed=backbone_seed)
            started = time.perf_counter()
            whitening, vectors = shared_whitening(args.videos, extractor)
            print(f"backbone seed {backbone_seed}: fit-pca whitening of {vectors:,} region vectors "
                  f"({time.perf_counter() - started:.0f} s with extraction)")
            outcomes: dict[str, list] = {"fit-pca on ../shared/videos, 512-d": [],
                                         f"fitted on the pair, {TEST_DIMS}-d": []}
            seconds: dict[str, list] = {name: [] for name in outcomes}
            for seed, pair in enumerate(pairs):
                raw = [extract_video_features(path, extractor) for path in (pair.query, pair.target)]
                own = fit_whitening(np.concatenate([v.features.reshape(-1, v.features.shape[-1]).numpy() for v in raw]),
                                    TEST_DIMS)
                for name, white in zip(outcomes, (whitening, own)):
                    with torch.inference_mode():
                        features = [as_video_features(str(v.path), white(v.features).numpy(), v.timestamps, v.fps)
                                    for v in raw]
                    comparison = compare_features(*features, network=None)
                    started = time.perf_counter()
                    locate_matches(comparison.frame_similarity, comparison.query_times, comparison.target_times, 1.0)
                    seconds[name].append(time.perf_counter() - started)
                    outcomes[name].append((f"pair{seed}", pair, comparison))
                    if args.verbose:
                        found = [tuple(round(x, 2) for x in m.as_dict().values()) for m in comparison.matches]
                        edits = [p.edit for p in pair.planted]
                        print(f"  pair {seed} ({name}): planted {bounds(pair.planted)} {edits}")
                        print(f"    matches {found}")
            for name in outcomes:
                report(f"{len(pairs)} pairs, backbone seed {backbone_seed}, whitening {name}", outcomes[name],
                       seconds[name])


if __name__ == "__main__":
    main()
