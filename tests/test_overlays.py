"""FT overlays on the original's assets (overlays.py, overlay_assets.py): the rule's distributions over seeded draws."""
from __future__ import annotations

import math
import os
import pickle
import unicodedata
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from s2vs_cli.config import AugmentationOptions
from s2vs_cli.training.overlay_assets import OverlayAssetsError, overlay_assets, read_charset
from s2vs_cli.training.overlays import SAMPLE_LENGTH, draw_emoji, draw_text, overlay_emoji, overlay_text

DRAWS = 300
SIDE = 224  # the training frames' side


@pytest.fixture(scope="module")
def assets():
    try:
        return overlay_assets()
    except OverlayAssetsError as e:
        pytest.skip(f"the overlay assets are not installed (pip install 's2vs[train]'): {e}")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def distinct_expected(probabilities: list[float], n: int) -> tuple[float, float]:
    """Mean and standard deviation of the number of distinct outcomes in n independent draws."""
    missing = [(1 - p) ** n for p in probabilities]
    mean = sum(1 - q for q in missing)
    var = sum(q * (1 - q) for q in missing)
    for i, p in enumerate(probabilities):  # covariance of two outcomes both missing
        for j in range(i + 1, len(probabilities)):
            var += 2 * ((1 - p - probabilities[j]) ** n - missing[i] * missing[j])
    return mean, math.sqrt(max(var, 0.0))


def script(code: int) -> str:
    """A character's script, as the first word of its Unicode name ('LATIN', 'THAI', 'CJK', ...)."""
    return unicodedata.name(chr(code), "UNNAMED").split()[0]


@pytest.fixture(scope="module")
def text_draws(assets):
    generator = gen(0)
    return [draw_text(SIDE, SIDE, AugmentationOptions(), generator, assets) for _ in range(DRAWS)]


def test_the_asset_set_is_augly_fonts_with_charsets_and_twemoji_images(assets):
    assert len(assets.font_files) == 364 and len(assets.emoji_files) == 872
    assert all(len(assets.font(i).charset) > 0 for i in range(0, 364, 37))


def test_charsets_are_read_without_running_any_global(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps([65, 66, 0x0E01]))
    assert read_charset(plain) == (65, 66, 0x0E01)
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps([os.getcwd]))  # any global, here a function
    with pytest.raises(OverlayAssetsError, match="refused global"):
        read_charset(hostile)
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(OverlayAssetsError, match="list of code points"):
        read_charset(wrong)


def test_missing_assets_are_one_clear_error(tmp_path):
    with pytest.raises(OverlayAssetsError, match="augly==1.0.0"):
        overlay_assets(tmp_path)


def test_fonts_are_uniform_over_the_set(assets, text_draws):
    fonts = Counter(d.font.name for d in text_draws)
    mean, sd = distinct_expected([1 / 364] * 364, DRAWS)  # 204.3 +- 5.1 for 300 draws
    assert abs(len(fonts) - mean) < 4 * sd, (len(fonts), mean, sd)


def test_characters_come_from_the_fonts_own_charsets_and_scripts_match_the_rule(assets, text_draws):
    for d in text_draws:
        assert {ord(c) for c in d.sample} <= set(d.font.charset)
    # A draw's first character is uniform over a uniformly drawn font's charset: P(script s) is the mean over
    # fonts of the share of s in the font's charset.
    share: Counter = Counter()
    for i in range(len(assets.font_files)):
        charset = assets.font(i).charset
        for name, count in Counter(script(c) for c in charset).items():
            share[name] += count / len(charset) / len(assets.font_files)
    mean, sd = distinct_expected(list(share.values()), DRAWS)
    used = {script(ord(d.sample[0])) for d in text_draws}
    assert abs(len(used) - mean) < 4 * sd + 1, (len(used), mean, sd)
    assert len(used) > 10  # many scripts, not ASCII only


def test_text_length_is_uniform_up_to_the_most_that_fits(assets, text_draws):
    drawn = [d for d in text_draws if d.most]
    assert len(drawn) > 0.9 * DRAWS
    for d in drawn[:60]:  # the most that fits, by the rule: the next character would not fit
        font = d.font.at(d.size)
        _, _, right, bottom = font.getbbox(d.sample[:d.most])
        assert right <= SIDE and bottom <= SIDE
        if d.most < SAMPLE_LENGTH - 1:
            _, _, right, bottom = font.getbbox(d.sample[:d.most + 1])
            assert right > SIDE or bottom > SIDE
    assert all(1 <= len(d.text) <= d.most and d.sample.startswith(d.text) for d in drawn)
    expected = sum((1 + d.most) / 2 for d in drawn) / len(drawn)
    sd = math.sqrt(sum((d.most ** 2 - 1) / 12 for d in drawn)) / len(drawn)
    mean = sum(len(d.text) for d in drawn) / len(drawn)
    assert abs(mean - expected) < 4 * sd, (mean, expected, sd)


def test_overlay_text_draws_the_drawn_text_deterministically(assets):
    frame = Image.new("RGB", (SIDE, SIDE), (0, 0, 0))
    opts = AugmentationOptions(text_opacity_min=1.0)
    for seed in range(5):
        drawn = draw_text(SIDE, SIDE, opts, gen(seed), assets)
        out = np.asarray(overlay_text(frame, opts, gen(seed), assets))
        assert np.array_equal(out, np.asarray(overlay_text(frame, opts, gen(seed), assets)))
        if drawn.text.strip():
            assert out.any()


def test_emoji_overlays_are_the_emoji_images_resized(assets):
    frame = Image.new("RGB", (SIDE, 160), (0, 0, 0))
    opts = AugmentationOptions(emoji_opacity_min=1.0, overlay_emoji_alpha=True)  # the default: test_honest_training
    for seed in range(3):
        drawn = draw_emoji(frame.width, frame.height, opts, gen(seed), assets)
        out = np.asarray(overlay_emoji(frame, opts, gen(seed), assets)).astype(int)
        (x, y), (w, h) = drawn.xy, drawn.size
        assert min(w, h) >= int(0.2 * 160) and 0 <= x <= SIDE - w and 0 <= y <= 160 - h
        assert not out[:y].any() and not out[y + h:].any() and not out[:, :x].any() and not out[:, x + w:].any()
        pasted = out[y:y + h, x:x + w]

        def error(path) -> float:
            with Image.open(path) as image:
                rgba = np.asarray(image.convert("RGBA").resize((w, h), Image.Resampling.BILINEAR)).astype(int)
            on_black = rgba[..., :3] * rgba[..., 3:] // 255
            return float(np.abs(on_black - pasted).max())

        errors = [error(p) for p in assets.emoji_files]
        assert errors[drawn.index] <= 1 and sorted(errors)[1] > 1  # the drawn PNG, and no other, was pasted


def test_emojis_are_uniform_over_the_set(assets):
    generator, opts = gen(1), AugmentationOptions()
    used = {draw_emoji(SIDE, SIDE, opts, generator, assets).index for _ in range(DRAWS)}
    mean, sd = distinct_expected([1 / 872] * 872, DRAWS)
    assert abs(len(used) - mean) < 4 * sd, (len(used), mean, sd)
