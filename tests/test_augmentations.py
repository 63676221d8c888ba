"""Training augmentations (docs/METHOD.md §5): views, temporal transforms, video-in-video, overlays and previews."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F2

from s2vs_cli.training import spatial
from s2vs_cli.training.preview import PREVIEW_GAP
from s2vs_cli.training.temporal import TEMPORAL_TRANSFORMS
from s2vs_cli.training.augmentations import (AUGMENTATION_NAMES, fast_forward, overlay_emoji, overlay_text,
                                    parse_augmentations, pause, random_resized_crop_params, reverse, save_preview,
                                    shuffle_dropout, slow_motion, strong_view, temporal_crop, temporal_transform,
                                    video_in_video, viv_box, weak_view)
from s2vs_cli.config import AugmentationOptions
from s2vs_cli.errors import ConfigError

WINDOW, CROP = 32, 32
ALL = frozenset(AUGMENTATION_NAMES)
NO_TT = dict(shuffle_dropout_p=0.0, fast_forward_p=0.0, slow_motion_p=0.0, reverse_p=0.0, pause_p=0.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def options(**changes) -> AugmentationOptions:
    return AugmentationOptions(crop_size=CROP, **changes)


def textured_clip(frames: int = 2 * WINDOW, height: int = 64, width: int = 80, seed: int = 0) -> torch.Tensor:
    """A clip whose frames differ from each other and have structure (gradients plus noise)."""
    g = gen(seed)
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    base = torch.stack([x * 255 // width, y * 255 // height, (x + y) % 32 * 8], -1)
    noise = torch.randint(0, 40, (frames, height, width, 3), generator=g)
    shift = torch.arange(frames).view(-1, 1, 1, 1) * 3
    return ((base + noise + shift) % 256).to(torch.uint8)


def indexed_clip(frames: int, offset: int = 0) -> torch.Tensor:
    """Frame k is filled with the value k + offset, so a clip's values spell its frame order."""
    return (torch.arange(frames) + offset).view(-1, 1, 1, 1).expand(frames, 4, 5, 3).to(torch.uint8).clone()


def order(clip: torch.Tensor) -> list[int]:
    """The frame values of an indexed clip (asserting each frame is uniform)."""
    flat = clip.reshape(len(clip), -1).long()
    assert (flat == flat[:, :1]).all()
    return flat[:, 0].tolist()


# ---------------------------------------------------------------------------------------------
# parse_augmentations


def test_parse_augmentations_subsets_order_case_and_spaces():
    assert parse_augmentations("GT,FT,TT,ViV") == ALL
    assert parse_augmentations(" viv , gt ") == {"ViV", "GT"}
    assert parse_augmentations("tt") == {"TT"}
    assert parse_augmentations("FT,ft,Ft") == {"FT"}
    assert parse_augmentations("GT,") == {"GT"}


@pytest.mark.parametrize("text", ["", "  ", "none", "None", " NONE "])
def test_parse_augmentations_none(text):
    assert parse_augmentations(text) == frozenset()


def test_parse_augmentations_unknown_token_names_it_and_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        parse_augmentations("GT,XY")
    assert str(error.value) == "unknown augmentation 'XY'; valid: GT, FT, TT, ViV"


# ---------------------------------------------------------------------------------------------
# Views: shapes, determinism, flip, FT and GT


@pytest.mark.parametrize("augmentations", [frozenset(), ALL, frozenset({"TT"}), frozenset({"GT", "FT"})])
def test_view_shapes_and_dtype(augmentations):
    clip = textured_clip()
    weak = weak_view(clip, WINDOW, options(), gen(0))
    strong = strong_view(clip, WINDOW, options(), augmentations, gen(0))
    for view in (weak, strong):
        assert view.shape == (WINDOW, CROP, CROP, 3)
        assert view.dtype == torch.uint8
        assert view.is_contiguous()


def test_views_of_a_short_clip_are_full_length():
    clip = textured_clip(frames=5)
    assert weak_view(clip, WINDOW, options(), gen(0)).shape[0] == WINDOW
    assert strong_view(clip, WINDOW, options(), ALL, gen(0)).shape[0] == WINDOW


def test_views_are_deterministic_given_the_seed():
    clip = textured_clip()
    for seed in range(3):
        assert torch.equal(weak_view(clip, WINDOW, options(), gen(seed)), weak_view(clip, WINDOW, options(), gen(seed)))
        assert torch.equal(strong_view(clip, WINDOW, options(), ALL, gen(seed)),
                           strong_view(clip, WINDOW, options(), ALL, gen(seed)))
    assert not torch.equal(weak_view(clip, WINDOW, options(), gen(0)), weak_view(clip, WINDOW, options(), gen(1)))
    assert not torch.equal(strong_view(clip, WINDOW, options(), ALL, gen(0)),
                           strong_view(clip, WINDOW, options(), ALL, gen(1)))


def test_views_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    strong_view(textured_clip(), WINDOW, options(), ALL, gen(0))
    video_in_video(torch.zeros(3, 4, 8, 8, 3, dtype=torch.uint8), options(viv_p=1.0), gen(0))
    assert torch.equal(before, torch.get_rng_state())


def test_flip_probability_zero_and_one():
    clip = textured_clip()
    for seed in range(3):
        kept = weak_view(clip, WINDOW, options(flip_p=0.0), gen(seed))
        flipped = weak_view(clip, WINDOW, options(flip_p=1.0), gen(seed))
        assert torch.equal(flipped, kept.flip(2))  # the same crop, every frame mirrored


def test_crop_and_flip_are_the_same_for_every_frame():
    frame = textured_clip(frames=1)
    clip = frame.expand(2 * WINDOW, -1, -1, -1)
    for view in (weak_view(clip, WINDOW, options(), gen(4)),
                 strong_view(clip, WINDOW, options(), frozenset({"GT"}), gen(4))):
        assert (view == view[:1]).all()


@pytest.mark.parametrize("seed", range(3))
def test_frame_transforms_with_probability_zero_are_identity(seed):
    clip = textured_clip()
    off = options(text_p=0.0, emoji_p=0.0, blur_p=0.0)
    plain = strong_view(clip, WINDOW, off, frozenset(), gen(seed))
    assert torch.equal(strong_view(clip, WINDOW, off, frozenset({"FT"}), gen(seed)), plain)


@pytest.mark.parametrize("which", ["text_p", "emoji_p", "blur_p"])
def test_each_frame_transform_with_probability_one_changes_every_frame(which):
    clip = textured_clip()
    only = options(**{name: float(name == which) for name in ("text_p", "emoji_p", "blur_p")})
    plain = strong_view(clip, WINDOW, only, frozenset(), gen(2))
    changed = strong_view(clip, WINDOW, only, frozenset({"FT"}), gen(2))
    assert all(not torch.equal(a, b) for a, b in zip(plain, changed))


def test_frame_transforms_are_drawn_per_frame():
    clip = torch.full((2 * WINDOW, 64, 80, 3), 128, dtype=torch.uint8)
    view = strong_view(clip, WINDOW, options(text_p=1.0, emoji_p=0.0, blur_p=0.0), frozenset({"FT"}), gen(0))
    distinct = {bytes(frame.numpy()) for frame in view}
    assert len(distinct) > WINDOW // 2  # different strings, colours and places frame by frame


def test_randaugment_with_no_operations_is_identity_and_otherwise_changes_clips():
    clip = textured_clip()
    for seed in range(3):
        plain = strong_view(clip, WINDOW, options(randaugment_ops=0), frozenset(), gen(seed))
        assert torch.equal(strong_view(clip, WINDOW, options(randaugment_ops=0), frozenset({"GT"}), gen(seed)), plain)
    changed = [not torch.equal(strong_view(clip, WINDOW, options(), frozenset({"GT"}), gen(seed)),
                               strong_view(clip, WINDOW, options(), frozenset(), gen(seed))) for seed in range(4)]
    assert any(changed)


def test_randaugment_operations_match_torchvision():
    autoaugment = pytest.importorskip("torchvision.transforms.autoaugment")
    if not hasattr(autoaugment, "_apply_op"):
        pytest.skip("this torchvision has no _apply_op to compare with")
    frames = torch.randint(0, 256, (2, 3, 24, 40), dtype=torch.uint8, generator=gen(0))
    space = autoaugment.RandAugment()._augmentation_space(31, (24, 40))
    assert [name for name, _, _ in spatial._RANDAUGMENT_OPS] == list(space)
    for name, largest, signed in spatial._RANDAUGMENT_OPS:
        magnitudes, their_signed = space[name]
        assert signed == their_signed
        for level in (0, 9, 30):
            theirs = float(magnitudes[level]) if magnitudes.ndim > 0 else 0.0
            ours = spatial._randaugment_magnitude(name, largest, level, 24, 40)
            assert ours == theirs, (name, level)
            for sign in (1.0, -1.0) if signed else (1.0,):
                expected = autoaugment._apply_op(frames, name, sign * theirs, InterpolationMode.NEAREST, None)
                assert torch.equal(spatial._randaugment_apply(frames, name, sign * ours), expected), (name, level)


# ---------------------------------------------------------------------------------------------
# Overlays and blur


def test_overlay_text_and_icon_change_the_frame_deterministically():
    frame = Image.fromarray(textured_clip(frames=1)[0].numpy())
    for overlay in (overlay_text, overlay_emoji):
        once = overlay(frame, options(), gen(3))
        assert once.size == frame.size and once.mode == "RGB"
        assert np.array_equal(np.asarray(once), np.asarray(overlay(frame, options(), gen(3))))
        assert not np.array_equal(np.asarray(once), np.asarray(frame))
        assert np.array_equal(np.asarray(frame), textured_clip(frames=1)[0].numpy())  # input untouched


def test_overlay_emoji_stays_within_its_size_range():
    frame = Image.new("RGB", (80, 64), (0, 0, 0))
    opts = options(emoji_size_min=0.25, emoji_size_max=0.25, emoji_opacity_min=1.0, emoji_opacity_max=1.0)
    for seed in range(10):
        changed = np.asarray(overlay_emoji(frame, opts, gen(seed))).any(-1)
        rows, cols = np.nonzero(changed)
        assert len(rows) > 0
        assert rows.max() - rows.min() < 16 and cols.max() - cols.min() < 16  # 0.25 of the short side


# ---------------------------------------------------------------------------------------------
# Temporal crop and transforms


def test_temporal_crop_of_a_short_clip_doubles_it():
    clip = indexed_clip(5)
    for seed in range(20):
        values = order(temporal_crop(clip, 12, gen(seed)))
        assert len(values) == 12
        start = values[0]
        assert values == [(start + k) % 5 for k in range(12)]  # consecutive frames of 5 + 5 + 5 + 5


def test_temporal_crop_start_range():
    starts = {order(temporal_crop(indexed_clip(64), WINDOW, gen(seed)))[0] for seed in range(400)}
    assert min(starts) == 0 and max(starts) == 64 - WINDOW - 1  # [0, max(len - window, 1) - 1]
    assert order(temporal_crop(indexed_clip(WINDOW), WINDOW, gen(0))) == list(range(WINDOW))
    short = temporal_crop(indexed_clip(20), WINDOW, gen(0))  # doubled to 40, start in [0, 7]
    assert order(short)[0] in range(8)


def test_reverse_fast_forward_slow_motion():
    clip = indexed_clip(10)
    assert order(reverse(clip)) == list(range(9, -1, -1))
    assert order(fast_forward(clip, 2)) == [0, 2, 4, 6, 8]
    assert order(fast_forward(clip, 3)) == [0, 3, 6, 9]
    assert order(slow_motion(clip)) == [k // 2 for k in range(20)]


def test_pause_inserts_copies_before_the_start_frame():
    clip = indexed_clip(10)
    assert order(pause(clip, 4, 3)) == [0, 1, 2, 3, 4, 4, 4, 4, 5, 6, 7, 8, 9]
    assert order(pause(clip, 0, 2)) == [0, 0, 0] + list(range(1, 10))
    assert order(pause(clip, 8, 1)) == list(range(9)) + [8, 9]
    assert order(pause(clip, 3, 0)) == list(range(10))


@pytest.mark.parametrize("name", ["fast_forward", "slow_motion", "reverse", "pause", "none"])
def test_temporal_transform_picks_the_forced_one(name):
    forced = {**NO_TT, f"{name}_p": 1.0} if name != "none" else NO_TT
    clip = indexed_clip(2 * WINDOW)
    for seed in range(10):
        out, picked = temporal_transform(clip, WINDOW, options(**forced), gen(seed))
        values = order(out)
        assert picked == name
        if name == "fast_forward":
            assert values in ([*range(0, 64, 2)], [*range(0, 64, 3)])
        elif name == "slow_motion":
            assert values == [k // 2 for k in range(128)]
        elif name == "reverse":
            assert values == list(range(63, -1, -1))
        elif name == "pause":
            duration = len(values) - 64
            assert 0 <= duration <= WINDOW // 4 - 1
            start = next((k for k, v in enumerate(values) if v != k), 64) - 1  # the paused frame (64 - 1: no pause)
            if duration:
                assert start <= 62
            assert values == list(range(start)) + [start] * duration + list(range(start, 64))
        else:
            assert values == list(range(64))


def test_temporal_transform_frequencies_follow_the_paper():
    clip = indexed_clip(2 * WINDOW)
    picked = [temporal_transform(clip, WINDOW, options(), gen(seed))[1] for seed in range(500)]
    shares = {name: picked.count(name) / len(picked) for name in TEMPORAL_TRANSFORMS}
    assert abs(shares["shuffle_dropout"] - 0.5) < 0.08
    for name in ("fast_forward", "slow_motion", "reverse", "pause", "none"):
        assert abs(shares[name] - 0.1) < 0.05, shares


def segment_options(**changes) -> AugmentationOptions:
    return options(**{"segment_min": 4, "segment_max": 4, "segment_shuffle_p": 0.0, "segment_drop_p": 0.0,
                      **changes})


def whole_segments(values: list[int], w: int) -> list[int]:
    """The original segment numbers the output consists of (asserting each piece is a whole segment)."""
    assert len(values) % w == 0
    segments = []
    for k in range(0, len(values), w):
        piece = values[k:k + w]
        assert piece[0] % w == 0 and piece == list(range(piece[0], piece[0] + w)), piece
        segments.append(piece[0] // w)
    return segments


def test_shuffle_dropout_discards_the_trailing_frames():
    assert order(shuffle_dropout(indexed_clip(66), segment_options(), gen(0))) == list(range(64))


def test_shuffle_dropout_segment_length_range():
    for seed in range(20):
        out = order(shuffle_dropout(indexed_clip(64), options(segment_shuffle_p=0.0, segment_drop_p=0.0), gen(seed)))
        assert 64 - 14 <= len(out) <= 64 and out == list(range(len(out)))  # w in 4..15 divides len(out)
        assert any(len(out) % w == 0 and 64 - len(out) < w for w in range(4, 16))


def test_shuffle_dropout_shuffles_whole_segments():
    shuffled = 0
    for seed in range(5):
        segments = whole_segments(order(shuffle_dropout(indexed_clip(64), segment_options(segment_shuffle_p=1.0),
                                                        gen(seed))), 4)
        assert sorted(segments) == list(range(16))
        shuffled += segments != list(range(16))
    assert shuffled > 0


def test_shuffle_dropout_removes_whole_segments():
    removed = 0
    for seed in range(10):
        opts = segment_options(segment_drop_p=0.4, segment_replace_p=0.0, segment_shuffle_p=float(seed % 2))
        values = order(shuffle_dropout(indexed_clip(64), opts, gen(seed)))
        segments = whole_segments(values, 4)
        assert 0 < len(segments) <= 16 and len(set(segments)) == len(segments)
        if seed % 2 == 0:
            assert segments == sorted(segments)
        removed += len(segments) < 16
    assert removed > 0


def test_shuffle_dropout_dropping_everything_is_skipped():
    # Every segment removed: Σ mask = segments, so the original drops nothing (the clip is never empty).
    out = shuffle_dropout(indexed_clip(64), segment_options(segment_drop_p=1.0, segment_replace_p=0.0), gen(0))
    assert order(out) == list(range(64))


@pytest.mark.parametrize("noise_p", [0.0, 1.0])
def test_shuffle_dropout_replaces_segments_with_black_or_noise(noise_p):
    replaced = 0
    for seed in range(20):
        opts = segment_options(segment_drop_p=0.2, segment_replace_p=1.0, noise_p=noise_p)
        out = shuffle_dropout(indexed_clip(64, offset=1), opts, gen(seed))  # values 1..64: black is new
        assert len(out) == 64  # replaced, not removed
        for k in range(0, 64, 4):
            piece = out[k:k + 4].reshape(4, -1).long()
            if (piece == torch.arange(k + 1, k + 5).view(4, 1)).all():
                continue
            replaced += 1
            if noise_p == 0.0:
                assert (piece == 0).all()
            else:
                assert all(len(frame.unique()) > 10 for frame in piece)  # uniform noise, not a flat frame
    assert replaced > 0


def test_shuffle_dropout_never_returns_an_empty_clip():
    for seed in range(40):
        frames = 1 + seed % 20
        opts = options(segment_drop_p=0.9, segment_replace_p=0.3, segment_shuffle_p=0.5)
        out = shuffle_dropout(indexed_clip(frames), opts, gen(seed))
        assert 0 < len(out) <= frames
    # Shorter than the segment length: one segment, which cannot be dropped.
    assert order(shuffle_dropout(indexed_clip(3), segment_options(segment_drop_p=1.0), gen(0))) == [0, 1, 2]


# ---------------------------------------------------------------------------------------------
# RandomResizedCrop parameters


def test_random_resized_crop_params_within_bounds():
    for seed in range(200):
        top, left, h, w = random_resized_crop_params(64, 80, 0.5, 1.0, gen(seed))
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 80
        assert 0.5 * 64 * 80 * 0.9 <= h * w <= 64 * 80
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_random_resized_crop_params_fallback_is_a_centre_crop():
    # A 10 x 1000 frame: no crop of the right ratio fits, so after ten tries the centre crop is taken.
    assert random_resized_crop_params(10, 1000, 0.9, 1.0, gen(0)) == (0, (1000 - 13) // 2, 10, 13)
    assert random_resized_crop_params(1000, 10, 0.9, 1.0, gen(0)) == ((1000 - 13) // 2, 0, 13, 10)


# ---------------------------------------------------------------------------------------------
# Video-in-video


def test_viv_probability_zero_is_identity():
    batch = torch.stack([textured_clip(frames=4, seed=s) for s in range(3)])
    out, labels = video_in_video(batch, options(viv_p=0.0), gen(0))
    assert torch.equal(out, batch)
    assert labels.dtype == torch.float32 and torch.equal(labels, torch.eye(3))


def test_viv_single_clip_has_nothing_to_mix():
    batch = textured_clip(frames=4)[None]
    out, labels = video_in_video(batch, options(viv_p=1.0), gen(0))
    assert torch.equal(out, batch) and torch.equal(labels, torch.eye(1))


@pytest.mark.parametrize("seed", range(4))
def test_viv_pastes_each_clip_into_the_other(seed):
    batch = torch.stack([textured_clip(frames=3, seed=0), 255 - textured_clip(frames=3, seed=1)])
    original = batch.clone()
    out, labels = video_in_video(batch, options(viv_p=1.0), gen(seed))
    assert torch.equal(batch, original)  # the input is not modified
    for i in range(2):
        j = 1 - i
        lam = float(labels[i, j])
        assert 0.3 <= lam <= 0.7 and labels[i, i] == 1
        inside = (out[i] != batch[j]).any(-1).any(0)  # [H, W]: where the partner clip was painted over
        rows, cols = torch.nonzero(inside, as_tuple=True)
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        # Outside the box: exactly the unmixed partner. Inside: clip i resized into the box.
        box = torch.zeros_like(inside)
        box[top:bottom, left:right] = True
        assert torch.equal(out[i][:, ~box], batch[j][:, ~box])
        donor = F2.resize(batch[i].permute(0, 3, 1, 2), [bottom - top, right - left],
                          interpolation=InterpolationMode.BILINEAR, antialias=True).permute(0, 2, 3, 1)
        assert torch.equal(out[i][:, top:bottom, left:right], donor)
        ratio = math.sqrt(1 - lam)
        assert bottom - top <= int(64 * ratio) and right - left <= int(80 * ratio)
        assert (bottom - top) * (right - left) <= (1 - lam) * 64 * 80


def test_viv_picks_another_slot_uniformly():
    batch = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1, 1).expand(4, 2, 16, 16, 3).clone()
    partners = set()
    for seed in range(30):
        _, labels = video_in_video(batch, options(viv_p=1.0), gen(seed))
        off = labels - torch.eye(4)
        assert (off.diagonal() == 0).all() and ((off > 0).sum(1) == 1).all()
        partners |= {(i, int(off[i].argmax())) for i in range(4)}
    assert partners == {(i, j) for i in range(4) for j in range(4) if i != j}


def test_viv_box_is_clipped_at_the_borders():
    lam = 0.5
    cut_h, cut_w = int(64 * math.sqrt(0.5)), int(80 * math.sqrt(0.5))  # 45, 56
    assert viv_box(64, 80, lam, 32, 40) == (32 - cut_h // 2, 32 + cut_h // 2, 40 - cut_w // 2, 40 + cut_w // 2)
    assert viv_box(64, 80, lam, 0, 0) == (0, cut_h // 2, 0, cut_w // 2)
    assert viv_box(64, 80, lam, 63, 79) == (63 - cut_h // 2, 64, 79 - cut_w // 2, 80)


# ---------------------------------------------------------------------------------------------
# Preview


def test_save_preview_writes_a_png_of_the_expected_size(tmp_path):
    weak = weak_view(textured_clip(), WINDOW, options(), gen(0))
    strong = strong_view(textured_clip(), WINDOW, options(), ALL, gen(0))
    path = tmp_path / "deep" / "folder" / "preview.png"
    save_preview(weak, strong, path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (8 * CROP + 7 * PREVIEW_GAP, 2 * CROP + PREVIEW_GAP)
        pixels = np.asarray(image.convert("RGB"))
    assert np.array_equal(pixels[:CROP, :CROP], weak[0].numpy())
    assert np.array_equal(pixels[CROP + PREVIEW_GAP:, -CROP:], strong[-1].numpy())
    save_preview(weak[:3], strong[:3], tmp_path / "short.png", frames=8)
    with Image.open(tmp_path / "short.png") as image:
        assert image.size == (3 * CROP + 2 * PREVIEW_GAP, 2 * CROP + PREVIEW_GAP)
