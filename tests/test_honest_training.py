"""Issue 26, training as the original trains: the cosine's length is the run's iterations, and emoji overlays
paste palette images on their opaque square (the original's) unless overlay_emoji_alpha asks for true alpha."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.config import AugmentationOptions, TrainConfig, build_config, config_to_yaml
from s2vs_cli.training.clips import BatchPlan
from s2vs_cli.training.experiment import CONFIG, _plain, resume_differences
from s2vs_cli.training.overlay_assets import OverlayAssets
from s2vs_cli.training.overlays import draw_emoji, overlay_emoji
from s2vs_cli.training.schedule import LearningRateSchedule

runner = CliRunner()
GREY = 128


# ---------------------------------------------------------------------------------------------
# The cosine's length


def test_schedule_default_ends_at_the_final_lr_at_the_last_step_of_a_2000_iteration_run():
    for run_length in ("steps", "epochs"):
        cfg = TrainConfig(iterations=2000, run_length=run_length)
        assert cfg.decay_iterations == 2000
        schedule = LearningRateSchedule.from_config(cfg)
        last = BatchPlan(1000, 16, 1, 0, run_length).run_steps(2000) - 1  # epochs: 2015 steps, the last 15 past it
        assert math.isclose(schedule(last), cfg.final_lr, rel_tol=1e-5)  # not 4.95e-5 (a cosine of 30,000)
        assert schedule(999) > 4.9e-5 and schedule(1500) < 2e-5  # warm-up to the peak, then half-way down
    assert schedule(2000) == schedule(2014) == cfg.final_lr  # as timm's: flat past the cosine's end


def test_schedule_explicit_decay_length_is_kept(tmp_path):
    paper = tmp_path / "paper.yaml"
    paper.write_text("decay_iterations: 30000\n")
    cfg = build_config(TrainConfig, paper, {"iterations": 2000})
    assert cfg.decay_iterations == 30000
    assert math.isclose(LearningRateSchedule.from_config(cfg)(1999), 4.95e-5, rel_tol=1e-3)
    unset = tmp_path / "unset.yaml"
    unset.write_text("iterations: 500\ndecay_iterations: null\n")  # null: the default, the run's iterations
    assert build_config(TrainConfig, unset).decay_iterations == 500
    assert TrainConfig(iterations=2000, decay_iterations=1200).decay_iterations == 1200


def test_print_config_shows_the_resolved_decay_length(tmp_path):
    shown = runner.invoke(app, ["train", str(tmp_path), "--iterations", "2000", "--print-config"])
    assert shown.exit_code == 0, shown.output
    assert "iterations: 2000\n" in shown.output and "decay_iterations: 2000\n" in shown.output
    assert "overlay_emoji_alpha: false\n" in shown.output


def test_resume_keeps_the_decay_length_it_started_with(tmp_path):
    experiment = tmp_path / "run"
    experiment.mkdir()
    started = TrainConfig(data=str(tmp_path), experiment_path=str(experiment), iterations=2000)
    (experiment / CONFIG).write_text(config_to_yaml(started))  # what a run writes at its start
    shown = runner.invoke(app, ["train", "--experiment-path", str(experiment), "--resume", "--iterations", "4000",
                                "--print-config"])
    assert shown.exit_code == 0, shown.output
    assert "iterations: 4000\n" in shown.output and "decay_iterations: 2000\n" in shown.output
    resumed = build_config(TrainConfig, experiment / CONFIG, {"iterations": 4000, "resume": True})
    assert resume_differences(_plain(started), resumed) == []
    fresh = TrainConfig(data=str(tmp_path), experiment_path=str(experiment), iterations=4000, resume=True)
    assert resume_differences(_plain(started), fresh) == ["decay_iterations 4000 (the run: 2000)"]


def test_runs_saved_before_overlay_emoji_alpha_resume_only_with_true_alpha():
    saved = _plain(TrainConfig())
    del saved["augmentation"]["overlay_emoji_alpha"]  # what earlier releases saved: they pasted through alpha
    assert resume_differences(saved, TrainConfig()) == ["augmentation.overlay_emoji_alpha False (the run: True)"]
    assert resume_differences(saved, TrainConfig(augmentation=AugmentationOptions(overlay_emoji_alpha=True))) == []


# ---------------------------------------------------------------------------------------------
# Emoji overlays

PALETTE = {0: ((0, 0, 0), 0), 1: ((0, 200, 0), 0), 2: ((255, 0, 0), 255)}  # index: (RGB, alpha)


@pytest.fixture
def palette_emoji(tmp_path) -> OverlayAssets:
    """One 8 x 8 palette PNG as Twemoji's: transparent entries black (0) and green (1), a red 4 x 4 core (2)."""
    index = np.zeros((8, 8), np.uint8)
    index[:2] = 1
    index[2:6, 2:6] = 2
    image = Image.fromarray(index, "P")
    image.putpalette([c for i in range(3) for c in PALETTE[i][0]])
    path = tmp_path / "twemojis" / "test" / "emoji.png"
    path.parent.mkdir(parents=True)
    image.save(path, transparency=bytes(PALETTE[i][1] for i in range(3)))
    assert Image.open(path).mode == "P"
    return OverlayAssets(tmp_path, (), (path,))


def _pasted(assets: OverlayAssets, options: AugmentationOptions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlaid 64 x 64 grey frame as int, and a mask of the 32 x 32 box the emoji was drawn in."""
    frame = Image.new("RGB", (64, 64), (GREY,) * 3)
    drawn = draw_emoji(64, 64, options, torch.Generator().manual_seed(seed), assets)
    out = np.asarray(overlay_emoji(frame, options, torch.Generator().manual_seed(seed), assets)).astype(int)
    assert drawn.size == (32, 32)
    box = np.zeros((64, 64), bool)
    (x, y) = drawn.xy
    box[y:y + 32, x:x + 32] = True
    return out, box


def _nearest_rgb() -> np.ndarray:
    """The synthetic emoji's palette colours, ignoring alpha, scaled 4x nearest-neighbour (32 x 32 x 3)."""
    index = np.zeros((8, 8), np.uint8)
    index[:2], index[2:6, 2:6] = 1, 2
    rgb = np.array([PALETTE[i][0] for i in range(3)])[index]
    return rgb.repeat(4, 0).repeat(4, 1)


def test_emoji_default_pastes_a_palette_emoji_on_its_opaque_square(palette_emoji):
    for opacity in (1.0, 0.7):
        options = AugmentationOptions(emoji_size_min=0.5, emoji_size_max=0.5, emoji_opacity_min=opacity,
                                      emoji_opacity_max=opacity)
        for seed in range(3):
            out, box = _pasted(palette_emoji, options, seed)
            assert (out[~box] == GREY).all()  # nothing outside the emoji's square
            mask = int(opacity * 255)  # the original's: no "A" band, the opacity over the whole square
            expected = (_nearest_rgb() * mask + GREY * (255 - mask)) / 255
            square = out[box].reshape(32, 32, 3)
            assert np.abs(square - expected).max() <= 1  # black and green where the PNG is transparent
            if opacity == 1.0:  # opaque: the palette's colours exactly, resized nearest-neighbour
                assert np.array_equal(square, _nearest_rgb()) and (square[8:24, 8:24] == [255, 0, 0]).all()


def test_emoji_alpha_mode_blends_only_the_emoji_pixels(palette_emoji, tmp_path):
    section = tmp_path / "alpha.yaml"
    section.write_text("augmentation:\n  overlay_emoji_alpha: true\n  emoji_size_min: 0.5\n  emoji_size_max: 0.5\n"
                       "  emoji_opacity_min: 1.0\n")
    options = build_config(TrainConfig, section).augmentation
    assert options.overlay_emoji_alpha
    for seed in range(3):
        out, box = _pasted(palette_emoji, options, seed)
        square = out[box].reshape(32, 32, 3)
        assert (out[~box] == GREY).all()
        assert (square[:6] == GREY).all() and (square[26:] == GREY).all()  # transparent: the frame shows through
        assert (square[:, :6] == GREY).all() and (square[:, 26:] == GREY).all()
        assert (square[10:22, 10:22] == [255, 0, 0]).all()  # the emoji's own pixels, opaque
