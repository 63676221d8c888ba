"""A calibrated verdict: the score threshold above which a pair is a copy, fitted on labelled pairs.

Fitting. Every (query, database video) pair of a labelled set is scored; a copy is a positive, every other
pair a negative. Ranked by score, each distinct score is a candidate threshold t, with precision(t) =
copies scoring ≥ t / pairs scoring ≥ t and recall(t) = copies scoring ≥ t / copies. The threshold kept
is the lowest one whose precision reaches the target (the most recall for that precision), placed halfway
to the next lower score, so a pair scoring exactly like the last accepted one is still a copy.

How many pairs a claim needs. A precision measured on n pairs has the binomial standard error
sqrt(p(1 - p) / n). A claim "precision p" is worth making when that error is at most half of the error
rate 1 - p it allows (0.95 is then 0.95 ± 0.025): n ≥ 4p / (1 - p), 76 pairs for 0.95, 396 for 0.99.
The set needs that many copies (there can be no more accepted copies than copies) and that many
non-copies (so false positives had the chance to show), and the threshold must accept that many pairs.
The precision holds for pairs drawn like the calibration set's: calibrate on material like your own.

Thresholds belong to the scores they were fitted on: the model (a network or features only) and the content of
its weights (a digest of its configuration and state dict, ViSiL.weights_digest), the extractor (backbone,
whitening, frame rate), the score normalization and the frames scored: every frame, or the common frames
(shared boilerplate and low-information frames, common_frames.py) left out, as search, dedup and
`compare --collection` leave them out by default. `Thresholds.check_applies` refuses any other, in one line
naming both: a threshold is a point on one distribution of scores, and leaving the boilerplate out moves
the scores of the pairs that share it. A file that records no `common_frames` (written before they were left
out) was fitted on every frame.

Files written before the digest was recorded still serve a published network, random weights or features only
(the name fixes the weights: published files are checked against their digests when loaded), but not a network
named by its path, whose file may since have been overwritten.

A thresholds file is checked on reading: each number within its range (a threshold outside the scores' range
would make every pair a copy, or none), each count a non-negative integer; one line names the file and field.
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import NETWORK, choices
from ..atomic import OutputWriteError, write_text_atomically
from ..config import MAX_NORMALIZE_BETA, MIN_TARGET_PRECISION
from ..config_checks import MAX_FPS, MIN_FPS
from ..errors import ConfigError, S2VSError
from ..json_file import read_json
from ..storage.store import labels_random_weights
from .normalization import NoiseNormalization

FORMAT = "s2vs-thresholds/1"
COPY, NOT_A_COPY = "copy", "not a copy"
FEATURES_ONLY = "features only"  # the model label of scores made without a similarity network
KEPT, LEFT_OUT = "kept", "left out"  # the common frames of the scores' collection (the file's `common_frames`)
REQUIRED_KEYS = ("threshold", "target_precision", "precision", "recall", "model", "extractor", "normalization",
                 "calibration_set", "s2vs_version")
COUNTS = ("pairs", "positives", "accepted", "missing_pairs")  # of calibration_set, where present
_DIGEST = re.compile(r"[0-9a-f]{64}")


class CalibrationError(S2VSError):
    """A labelled set cannot support the precision asked for (too small, or no threshold reaches it)."""


@dataclass(frozen=True)
class ScoreIdentity:
    """What made a score: the similarity model and the extractor of the features it compared."""

    model: str       # the network's label (e.g. "s2vs_dns"), or "features only"
    backbone: str    # e.g. "ResNet-50 imagenet" (RegionExtractor.backbone_label, StoreIdentity.backbone)
    whitening: str   # e.g. "vcdb", "none" (RegionExtractor.whitening_label, StoreIdentity.whitening)
    fps: float       # frames sampled per second of video
    weights: str | None = None  # sha256 of the network's config and weights (ViSiL.weights_digest); None: not
                                # known (features only, or a file or published name not loaded)

    @classmethod
    def of(cls, network: Any, backbone: str, whitening: str, fps: float) -> ScoreIdentity:
        """From the network that scores (None: features only) and the extractor's labels."""
        if network is None:
            return cls(FEATURES_ONLY, backbone, whitening, float(fps))
        return cls(str(network.label), backbone, whitening, float(fps), network.weights_digest())

    @classmethod
    def of_store(cls, network: Any, identity: Any) -> ScoreIdentity:
        """From the network that scores and a feature file's StoreIdentity (what made its features)."""
        return cls.of(network, identity.backbone, identity.whitening, identity.fps)

    @property
    def random_weights(self) -> bool:
        """Whether the network, the backbone or the whitening carries seeded random weights (by their labels,
        storage.store.labels_random_weights): a test of the pipeline, not a meaningful threshold."""
        return any(map(labels_random_weights, (self.model, self.backbone, self.whitening)))

    @property
    def named_by_content(self) -> bool:
        """Whether the model's label alone fixes its weights: features only, seeded random weights, or a
        published network (checked against its digest whenever it is loaded); not a checkpoint's path."""
        return self.model == FEATURES_ONLY or self.model.startswith("random (seed") or self.model in choices(NETWORK)

    def describe(self) -> str:
        """'s2vs_dns on ResNet-50 imagenet + vcdb whitening at 1 fps'."""
        whitening = "no whitening" if self.whitening == "none" else f"{self.whitening} whitening"
        return f"{self.model} on {self.backbone} + {whitening} at {self.fps:g} fps"


@dataclass(frozen=True)
class Fit:
    """The threshold fitted on labelled scores, and what it gives there."""

    threshold: float
    precision: float   # among the pairs scoring ≥ threshold
    recall: float      # of the copies
    accepted: int      # pairs scoring ≥ threshold
    pairs: int
    positives: int


def required_pairs(target_precision: float) -> int:
    """Pairs a precision claim needs: n ≥ 4p / (1 - p), where the binomial standard error sqrt(p(1-p)/n)
    is half of the error rate 1 - p (76 for 0.95)."""
    if not 0 < target_precision < 1:
        raise ConfigError(f"target_precision must be between 0 and 1 (both excluded), got {target_precision}")
    return math.ceil(round(4 * target_precision / (1 - target_precision), 9))


def check_enough(positives: int, negatives: int, target_precision: float, set_name: str) -> None:
    """CalibrationError unless the set holds enough copies and non-copies for the claim (required_pairs)."""
    needed = required_pairs(target_precision)
    if positives < needed or negatives < needed:
        raise CalibrationError(
            f"{set_name} is too small to support a precision of {target_precision:g}: it has {positives} copy "
            f"pairs and {negatives} other pairs, and needs at least {needed} of each (the standard error of a "
            f"precision measured on n pairs must be at most half of the {1 - target_precision:.2g} error rate "
            f"allowed: n ≥ 4p/(1-p))")


def fit_threshold(scores: np.ndarray, is_copy: np.ndarray, target_precision: float,
                  set_name: str = "the set") -> Fit:
    """The lowest threshold whose precision reaches `target_precision` (see the module's docstring).

    CalibrationError when the set is too small, when no threshold reaches the target, or when the one that
    does accepts fewer pairs than the claim needs.
    """
    scores, is_copy = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(is_copy, dtype=bool).ravel()
    if len(scores) != len(is_copy):
        raise ValueError(f"{len(scores)} scores but {len(is_copy)} labels")
    if np.isnan(scores).any():
        raise CalibrationError(f"{set_name}: a score is NaN; the features are damaged")
    positives = int(is_copy.sum())
    check_enough(positives, len(scores) - positives, target_precision, set_name)
    order = np.argsort(-scores, kind="stable")
    ranked, copies = scores[order], np.cumsum(is_copy[order])
    # A threshold can only fall between two different scores: the cut after the last of each run of ties.
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    accepted = ends + 1
    precision = copies[ends] / accepted
    reaching = np.flatnonzero(precision >= target_precision)
    if len(reaching) == 0:
        best = int(np.argmax(precision))
        raise CalibrationError(f"no threshold reaches a precision of {target_precision:g} on {set_name}: the best "
                               f"is {precision[best]:.3f}, scoring ≥ {ranked[ends[best]]:.4f}; lower "
                               "--target-precision, or use a stronger model")
    cut = int(ends[reaching[-1]])
    fit = Fit(threshold=_between(ranked, cut), precision=float(precision[reaching[-1]]),
              recall=float(copies[cut] / positives), accepted=cut + 1, pairs=len(scores), positives=positives)
    needed = required_pairs(target_precision)
    if fit.accepted < needed:
        raise CalibrationError(f"only {fit.accepted} pairs of {set_name} score above the threshold that reaches a "
                               f"precision of {target_precision:g} (recall {fit.recall:.2f}); the claim needs "
                               f"at least {needed}: add copies the model finds, or lower --target-precision")
    return fit


def _between(ranked: np.ndarray, cut: int) -> float:
    """Halfway from the last accepted score down to the next one (the last score when none is lower)."""
    last = float(ranked[cut])
    if cut + 1 == len(ranked):
        return last
    middle = (last + float(ranked[cut + 1])) / 2
    return middle if middle > ranked[cut + 1] else last  # adjacent floats: keep the next score out


@dataclass(frozen=True)
class Thresholds:
    """A fitted threshold with what it was fitted for and on: the contents of a thresholds file."""

    threshold: float
    target_precision: float
    precision: float                    # measured at the threshold on the calibration set
    recall: float
    identity: ScoreIdentity             # the scores it applies to
    normalization: NoiseNormalization | None
    calibration_set: dict[str, Any]     # name, file, features, pairs, positives, accepted
    version: str                        # of s2vs
    random_weights: bool = False        # fitted on scores of random weights: a test of the pipeline
    common_frames: str = KEPT           # LEFT_OUT: scored without the common frames of the scores' feature file
    path: str | None = field(default=None, compare=False)  # the file it was read from

    def verdict(self, score: float) -> str:
        """'copy' when `score` reaches the threshold, else 'not a copy'."""
        return COPY if score >= self.threshold else NOT_A_COPY

    @property
    def name(self) -> str:
        """How errors name these thresholds: their file, or 'the thresholds'."""
        return Path(self.path).name if self.path else "the thresholds"

    def check_applies(self, identity: ScoreIdentity, normalization: NoiseNormalization | None,
                      common_frames: str = KEPT, leave_out: str = "without --keep-common-frames") -> None:
        """ConfigError (one line naming both) unless scores made as `identity`, normalized as `normalization`
        (None: not normalized), with the common frames `common_frames` (KEPT or LEFT_OUT: common_frames_rule),
        are the scores these thresholds were fitted on; `leave_out` says how this command leaves them out."""
        if dataclasses.replace(identity, weights=None) != dataclasses.replace(self.identity, weights=None):
            raise ConfigError(f"{self.name} was calibrated for {self.identity.describe()}; this run uses "
                              f"{identity.describe()}")
        self._check_weights(identity.weights)
        if self.normalization is None and normalization is not None:
            raise ConfigError(f"{self.name} was calibrated on scores that are not normalized; this run normalizes "
                              f"them with {normalization.describe()} (calibrate again with --normalize-with)")
        if self.normalization is not None and not self.normalization.same_as(normalization):
            now = "does not normalize them" if normalization is None else \
                f"normalizes them with {normalization.describe()}"
            raise ConfigError(f"{self.name} was calibrated on scores normalized with "
                              f"{self.normalization.describe()}; this run {now}")
        self._check_common_frames(common_frames, leave_out)

    def _check_common_frames(self, common_frames: str, leave_out: str) -> None:
        """ConfigError unless this run's scores keep or leave out the common frames as the calibration's did."""
        if common_frames == self.common_frames:
            return
        if common_frames == LEFT_OUT:
            raise ConfigError(f"{self.name} was calibrated on scores of every frame; this run leaves out common "
                              "frames (calibrate again, or pass --keep-common-frames)")
        raise ConfigError(f"{self.name} was calibrated on scores with common frames left out; this run scores every "
                          f"frame (calibrate again with --keep-common-frames, or run {leave_out})")

    def _check_weights(self, weights: str | None) -> None:
        """ConfigError unless a network whose weights digest is `weights` is the one calibrated for."""
        recorded, model = self.identity.weights, self.identity.model
        if recorded is None:
            if not self.identity.named_by_content:
                raise ConfigError(f"{self.name} names its network by path only ({model}), not by the content of its "
                                  "weights, so a file overwritten since cannot be told apart: calibrate again")
            return
        if weights != recorded:
            now = f"sha256 {weights[:12]}" if weights else "unknown weights"
            raise ConfigError(f"{self.name} was calibrated for other weights of {model} (sha256 {recorded[:12]}; "
                              f"this run's: {now}): calibrate again for these weights")

    def as_dict(self) -> dict[str, Any]:
        """The thresholds file's JSON."""
        return {"format": FORMAT, "threshold": self.threshold, "target_precision": self.target_precision,
                "precision": self.precision, "recall": self.recall, "model": self.identity.model,
                "model_weights": self.identity.weights,
                "extractor": {"backbone": self.identity.backbone, "whitening": self.identity.whitening,
                              "fps": self.identity.fps},
                "normalization": None if self.normalization is None else self.normalization.as_dict(),
                "common_frames": self.common_frames,
                "calibration_set": dict(self.calibration_set), "random_weights": self.random_weights,
                "s2vs_version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | None = None) -> Thresholds:
        """Read back what as_dict wrote; ConfigError naming the file and the problem otherwise."""
        where = f"{path}: " if path else "thresholds: "
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ConfigError(f"{where}not a thresholds file (expected \"format\": \"{FORMAT}\"; "
                              "write one with s2vs calibrate)")
        absent = [key for key in REQUIRED_KEYS if key not in data]
        if absent:
            raise ConfigError(f"{where}missing '{absent[0]}'")
        try:
            extractor = data["extractor"]
            normalization = data["normalization"]
            thresholds = cls(
                threshold=_number(data["threshold"]), target_precision=_number(data["target_precision"]),
                precision=_number(data["precision"]), recall=_number(data["recall"]),
                identity=ScoreIdentity(_text(data["model"]), _text(extractor["backbone"]),
                                       _text(extractor["whitening"]), _number(extractor["fps"]),
                                       _digest(data.get("model_weights"))),
                normalization=None if normalization is None else NoiseNormalization.from_dict(normalization),
                calibration_set=dict(data["calibration_set"]), version=str(data["s2vs_version"]),
                random_weights=_flag(data.get("random_weights", False)),
                common_frames=_common_frames(data.get("common_frames", KEPT)), path=path)
            _check_ranges(thresholds, normalization, where)
        except KeyError as e:
            raise ConfigError(f"{where}missing {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}malformed thresholds file ({e})") from None
        return thresholds

    def save(self, path: str | Path) -> None:
        """Write the thresholds file (indented JSON), whole or not at all: a failure leaves the previous file."""
        try:
            write_text_atomically(path, json.dumps(self.as_dict(), indent=1, ensure_ascii=False) + "\n")
        except OutputWriteError as e:
            raise S2VSError(f"{path}: cannot write the thresholds ({e.reason})") from None


def common_frames_rule(keep_common_frames: bool) -> str:
    """KEPT when a run scores every frame (`--keep-common-frames`), else LEFT_OUT."""
    return KEPT if keep_common_frames else LEFT_OUT


def load_thresholds(path: str | Path) -> Thresholds:
    """Read a thresholds file: S2VSError when it is missing, ConfigError (one line naming it) when it is
    unreadable or malformed."""
    data = read_json(path, "thresholds file", hint=" (write one with s2vs calibrate)")
    return Thresholds.from_dict(data, str(path))


def _check_ranges(thresholds: Thresholds, normalization: Mapping[str, Any] | None, where: str) -> None:
    """ConfigError naming the field whose value no calibration can have written (`normalization`: as read)."""
    def outside(field_name: str, value: float, interval: str) -> ConfigError:
        return ConfigError(f"{where}'{field_name}' is {value:g}, outside {interval}")

    if normalization is not None and not 0 <= thresholds.normalization.beta <= MAX_NORMALIZE_BETA:
        raise outside("normalization.beta", thresholds.normalization.beta, f"[0, {MAX_NORMALIZE_BETA:g}]")
    # Scores are in [-1, 1]; normalization takes off up to β times a noise similarity in [-1, 1].
    bound = 1.0 if normalization is None else 1.0 + thresholds.normalization.beta
    if not -bound <= thresholds.threshold <= bound:
        raise outside("threshold", thresholds.threshold, f"the scores' range [{-bound:g}, {bound:g}]")
    if not MIN_TARGET_PRECISION <= thresholds.target_precision < 1:
        raise outside("target_precision", thresholds.target_precision, f"[{MIN_TARGET_PRECISION:g}, 1)")
    for name in ("precision", "recall"):
        if not 0 < getattr(thresholds, name) <= 1:
            raise outside(name, getattr(thresholds, name), "(0, 1]")
    if thresholds.precision < thresholds.target_precision:
        raise ConfigError(f"{where}'precision' {thresholds.precision:g} is below its 'target_precision' "
                          f"{thresholds.target_precision:g}: calibrate never writes that")
    if not MIN_FPS <= thresholds.identity.fps <= MAX_FPS:
        raise outside("extractor.fps", thresholds.identity.fps, f"[{MIN_FPS:g}, {MAX_FPS:g}]")
    counts = {f"calibration_set.{k}": thresholds.calibration_set[k] for k in COUNTS if k in thresholds.calibration_set}
    if normalization is not None:
        counts |= {f"normalization.{k}": normalization[k] for k in ("videos", "k")}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}'{name}' is {value!r}, not a count (a whole number, 0 or more)")
    used = thresholds.calibration_set
    for part in ("positives", "accepted"):
        if part in used and "pairs" in used and used[part] > used["pairs"]:
            raise ConfigError(f"{where}'calibration_set.{part}' {used[part]} exceeds its 'pairs' {used['pairs']}")
    if normalization is not None and thresholds.normalization.k < 1:
        raise ConfigError(f"{where}'normalization.k' is {thresholds.normalization.k}; it must be at least 1")


def _number(value: Any) -> float:
    """A finite JSON number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _text(value: Any) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    """A JSON true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _common_frames(value: Any) -> str:
    """KEPT or LEFT_OUT (a file written before common frames were left out records neither: KEPT)."""
    if value not in (KEPT, LEFT_OUT):
        raise ValueError(f"common_frames: expected \"{LEFT_OUT}\" or \"{KEPT}\", got {value!r}")
    return value


def _digest(value: Any) -> str | None:
    """A weights digest (64 hex digits), or None where the file records none (before s2vs recorded them)."""
    if value is not None and not (isinstance(value, str) and _DIGEST.fullmatch(value)):
        raise ValueError(f"model_weights: expected 64 hex digits, got {value!r}")
    return value
