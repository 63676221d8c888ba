"""Best-matching segment on a frame-to-frame map: synthetic maps with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from s2vs_cli.scoring.localization import (
    Segment, _Alignment, all_segments, best_segment, locate_matches, match_scores, segment_times)


def noise(tq, tt, seed=0, level=0.5, spread=0.05):
    return np.random.default_rng(seed).normal(level, spread, (tq, tt)).astype(np.float32)


def test_diagonal_excerpt():
    sim = noise(10, 60)
    for k in range(10):
        sim[k, 25 + k] = 0.85
    segment = best_segment(sim)
    assert (segment.query_first, segment.query_last, segment.target_first, segment.target_last) == (0, 9, 25, 34)


def test_excerpt_inside_both_videos_with_gaps():
    sim = noise(60, 80, seed=1)
    for k in range(20):
        if k not in (7, 8):  # two frames lost in the copy
            sim[12 + k, 40 + k] = 0.8
    segment = best_segment(sim)
    assert (segment.query_first, segment.query_last) == (12, 31)
    assert (segment.target_first, segment.target_last) == (40, 59)


def test_double_speed_copy():
    """The target plays the query at twice the speed: steps of (1, 2) are followed."""
    sim = noise(40, 60, seed=2)
    for k in range(20):
        sim[10 + k, 5 + 2 * k] = 0.9
    segment = best_segment(sim)
    assert (segment.query_first, segment.query_last) == (10, 29)
    assert (segment.target_first, segment.target_last) == (5, 43)


def test_half_speed_copy():
    sim = noise(60, 40, seed=3)
    for k in range(20):
        sim[5 + 2 * k, 10 + k] = 0.9
    segment = best_segment(sim)
    assert (segment.query_first, segment.target_first, segment.target_last) == (5, 10, 29)
    assert segment.query_last == 43


def test_strongest_of_two_matches_wins():
    sim = noise(50, 50, seed=4)
    for k in range(6):
        sim[2 + k, 30 + k] = 0.8
    for k in range(15):
        sim[20 + k, 5 + k] = 0.8
    segment = best_segment(sim)
    assert (segment.query_first, segment.target_first) == (20, 5)


def test_identical_videos_match_end_to_end():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(30, 16))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    segment = best_segment(features @ features.T)
    assert (segment.query_first, segment.query_last, segment.target_first, segment.target_last) == (0, 29, 0, 29)


def test_flat_map_and_single_cell():
    assert best_segment(np.full((5, 7), 0.3)).query_first == 0
    assert best_segment(np.ones((1, 1))) == Segment(0, 0, 0, 0, 1.0)


def test_segment_times_from_tick_times():
    segment = Segment(query_first=2, query_last=5, target_first=10, target_last=13, score=1.0)
    times = segment_times(segment, np.arange(8) * 0.5, np.arange(20) * 0.5, frame_duration=0.5)
    assert (times.query_start, times.query_end) == (1.0, 3.0)
    assert (times.target_start, times.target_end) == (5.0, 7.0)


def test_segment_times_on_repeated_short_video():
    """A 2-frame video repeated to 4 frames: times span the real frames."""
    segment = Segment(query_first=0, query_last=3, target_first=1, target_last=2, score=1.0)
    times = segment_times(segment, np.array([0.0, 1.0, 0.0, 1.0]), np.arange(5.0), frame_duration=1.0)
    assert (times.query_start, times.query_end) == (0.0, 2.0)
    assert times.as_dict() == {"query_start": 0.0, "query_end": 2.0, "target_start": 1.0, "target_end": 3.0}


@pytest.mark.slow
def test_two_hour_map_is_fast_enough_and_exact():
    sim = noise(7200, 7200, seed=6)
    for k in range(100):
        sim[3000 + k, 5000 + k] = 0.8
    segment = best_segment(sim)
    assert (segment.query_first, segment.target_first, segment.query_last) == (3000, 5000, 3099)


def _plant(sim, rows, columns, value=0.8):
    for i, j in zip(rows, columns):
        sim[i, j] = value


def _covers_half(segment, rows, columns):
    """The segment covers at least half of a planted excerpt's frames on both axes."""
    def covered(first, last, planted):
        return len(set(range(first, last + 1)) & set(planted)) >= len(set(planted)) / 2
    return (covered(segment.query_first, segment.query_last, rows)
            and covered(segment.target_first, segment.target_last, columns))


def test_every_copied_part_is_found_once_and_nothing_else():
    sim = noise(130, 200, seed=3)
    planted = [
        (range(10, 30), range(50, 70)),                 # an excerpt
        (range(50, 70), range(50, 70)),                 # the same excerpt shown again later in the query
        (range(90, 110), range(120, 160, 2)),           # another one, played at double speed
    ]
    for rows, columns in planted:
        _plant(sim, rows, columns)
    segments = all_segments(sim)
    assert len(segments) == 3
    for rows, columns in planted:
        assert sum(_covers_half(s, rows, columns) for s in segments) == 1
    for a in segments:  # no two overlap in the (query, target) plane
        for b in segments:
            if a is not b:
                assert (a.query_last < b.query_first or b.query_last < a.query_first
                        or a.target_last < b.target_first or b.target_last < a.target_first)
    assert [s.score for s in segments] == sorted((s.score for s in segments), reverse=True)
    assert segments[0].mean_similarity(sim) == pytest.approx(0.8, abs=0.05)


def test_all_segments_starts_with_the_best_one():
    """Same frames as best_segment (the evidence differs: all_segments scores cells against their frames' own best)."""
    sim = noise(40, 50, seed=4)
    _plant(sim, range(5, 25), range(20, 40))
    _plant(sim, range(30, 35), range(0, 5), value=0.7)
    first, best = all_segments(sim)[0], best_segment(sim)
    assert (first.query_first, first.query_last, first.target_first, first.target_last) == (
        best.query_first, best.query_last, best.target_first, best.target_last)


def test_short_or_capped_segments_are_left_out():
    sim = noise(60, 60, seed=5)
    _plant(sim, range(5, 25), range(5, 25))
    _plant(sim, range(40, 43), range(40, 43), value=0.78)  # 3 frames
    assert len(all_segments(sim, min_frames=2)) == 2
    assert len(all_segments(sim, min_frames=4)) == 1
    assert len(all_segments(sim, max_segments=1)) == 1
    flat = np.full((8, 8), 0.5, dtype=np.float32)
    assert len(all_segments(flat, max_segments=3)) <= 3


def _frames(segment):
    return (segment.query_first, segment.query_last, segment.target_first, segment.target_last)


def test_weaker_copy_below_the_maps_midpoint_is_found():
    """A cropped copy at a third of the re-encoded copy's height: below the map's midpoint, still a part."""
    sim = noise(90, 80, seed=7, spread=0.02)
    _plant(sim, range(10, 30), range(40, 60), value=0.9)
    _plant(sim, range(50, 65), range(5, 20), value=0.62)
    assert (match_scores(sim)[range(50, 65), range(5, 20)] < 0).all()  # best_segment's scoring misses it
    assert [_frames(s) for s in all_segments(sim)] == [(10, 29, 40, 59), (50, 64, 5, 19)]


def test_echo_of_a_copy_on_a_neighbouring_diagonal_is_not_a_part():
    """A static scene: the copy's last query frames also resemble the target frames just after the copy."""
    sim = noise(40, 70, seed=8, spread=0.02)
    _plant(sim, range(10, 20), range(30, 40), value=0.85)
    _plant(sim, range(16, 20), range(40, 44), value=0.7)
    assert [_frames(s) for s in all_segments(sim)] == [(10, 19, 30, 39)]


def test_two_copies_with_unrelated_footage_between_are_two_parts():
    sim = noise(45, 50, seed=9, spread=0.02)
    _plant(sim, range(10, 20), range(20, 30))
    _plant(sim, range(23, 33), range(31, 41))  # 3 unrelated query frames, then the target 1 s further on
    assert sorted(_frames(s) for s in all_segments(sim)) == [(10, 19, 20, 29), (23, 32, 31, 40)]


def test_noise_alone_has_no_parts():
    assert all_segments(noise(400, 300, seed=10)) == []
    assert locate_matches(noise(50, 60, seed=11), np.arange(50.0), np.arange(60.0), fps=1.0) == []


def test_weak_parts_below_a_minimum_score_are_left_out():
    sim = noise(60, 60, seed=12, spread=0.02)
    _plant(sim, range(5, 20), range(5, 20), value=0.85)
    _plant(sim, range(30, 45), range(40, 55), value=0.65)
    assert len(all_segments(sim)) == 2
    assert [_frames(s) for s in all_segments(sim, min_similarity=0.7)] == [(5, 19, 5, 19)]
    matches = locate_matches(sim, np.arange(60.0), np.arange(60.0), fps=1.0, min_score=0.7)
    assert [(m.times.query_start, m.times.query_end) for m in matches] == [(5.0, 20.0)]
    assert matches[0].score == pytest.approx(0.85, abs=0.01)


def test_realigning_after_blocking_equals_aligning_afresh():
    scores = np.random.default_rng(13).normal(-0.2, 0.4, (70, 60)).astype(np.float32)
    alignment = _Alignment(scores.copy())
    alignment.scores[20:31, 10:25] = -np.inf
    alignment.realign(20, 30)
    scores[20:31, 10:25] = -np.inf
    fresh = _Alignment(scores)
    np.testing.assert_array_equal(alignment.totals, fresh.totals)
    assert alignment.best_path() == fresh.best_path()


@pytest.mark.slow
def test_two_hour_map_every_part_found():
    """7,200 x 7,200 frames (two 2-hour videos at 1 fps), four copies of 1-10 minutes, one at double speed."""
    sim = noise(7200, 7200, seed=14)
    planted = [(range(300, 400), range(5000, 5100)), (range(2000, 2300), range(100, 700, 2)),
               (range(4000, 4060), range(4000, 4060)), (range(6000, 6600), range(2500, 3100))]
    for rows, columns in planted:
        _plant(sim, rows, columns)
    found = sorted(_frames(s) for s in all_segments(sim))
    assert found == sorted((r[0], r[-1], c[0], c[-1]) for r, c in planted)
