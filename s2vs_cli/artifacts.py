"""Every file s2vs downloads, in one table: name, kind, URL, checksum, and the option that takes a local copy.

Help text, `available_models()`, offline messages ("put it here, or pass --pca FILE") and the download
code all read this table; adding a published model or an annotation file is one entry here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UnknownWeightsError

# What a file is, which decides where it is used and which option takes a local copy instead.
BACKBONE, WHITENING, NETWORK, ANNOTATION = "backbone", "whitening", "network", "annotation"
KINDS = (BACKBONE, WHITENING, NETWORK, ANNOTATION)
# The words a weights option takes besides the published names (models/loading.py builds them, by the same
# words), and what its messages call each kind.
RANDOM, NO_WHITENING = "random", "none"
BUILT_IN = {BACKBONE: (RANDOM,), WHITENING: (NO_WHITENING, RANDOM), NETWORK: (RANDOM,)}
WEIGHTS_WORD = {BACKBONE: "backbone", WHITENING: "whitening", NETWORK: "model"}


@dataclass(frozen=True)
class Artifact:
    """One downloadable file: its URL, cache file name and what is known of its checksum."""

    name: str
    url: str
    filename: str
    sha256: str | None
    sha256_prefix: str | None = None
    description: str = ""
    # Other names the same weights go by in torch hub's cache (torchvision renamed the file).
    hub_filenames: tuple[str, ...] = ()
    kind: str = NETWORK
    option: str = ""            # the command-line option that takes a local copy instead of downloading
    alias: str = ""             # the word that option takes for this file (default: its name)

    @property
    def choice(self) -> str:
        """What a user types to get this file: `imagenet` for the ResNet-50 weights, `s2vs_dns` for a network."""
        return self.alias or self.name


_GKORDO = "https://raw.githubusercontent.com/gkordo/s2vs/main/data"

ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="resnet50_imagenet",
            url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
            filename="resnet50-0676ba61.pth",
            sha256=None,
            sha256_prefix="0676ba61",
            description="ResNet-50 backbone, torchvision IMAGENET1K_V1",
            hub_filenames=("resnet50-0676ba61.pth", "resnet50-19c8e357.pth"),
            kind=BACKBONE, option="--backbone-weights", alias="imagenet",
        ),
        Artifact(
            name="pca_vcdb",
            url="http://ndd.iti.gr/visil/pca_resnet50_vcdb_1M.pth",
            filename="pca_resnet50_vcdb_1M.pth",
            sha256=None,
            description="PCA whitening of ResNet-50 region features, learnt on 1M VCDB frames",
            kind=WHITENING, option="--pca", alias="vcdb",
        ),
        Artifact(
            name="s2vs_dns",
            url="https://mever.iti.gr/s2vs/weights/s2vs_dns.pth",
            filename="s2vs_dns.pth",
            sha256=None,
            description="S2VS similarity network, trained with the DnS video set",
            kind=NETWORK, option="--model",
        ),
        Artifact(
            name="s2vs_vcdb",
            url="https://mever.iti.gr/s2vs/weights/s2vs_vcdb.pth",
            filename="s2vs_vcdb.pth",
            sha256=None,
            description="S2VS similarity network, trained with the VCDB video set",
            kind=NETWORK, option="--model",
        ),
        Artifact(
            name="fivr",
            url=f"{_GKORDO}/fivr_audio.pickle",
            filename="fivr_audio.pickle",
            sha256="41dc5f5aa3f9d0d9dae70dbea9054fb8fd55a5199fb3ffc554cfd68078158d8c",
            description="FIVR-5K/200K queries, databases and labels (ND, DS, CS, IS, DA)",
            kind=ANNOTATION, option="--annotations",
        ),
        Artifact(
            name="fivr_easy_duplicates",
            url=f"{_GKORDO}/fivr_easy_duplicates.txt",
            filename="fivr_easy_duplicates.txt",
            sha256="b50b7135d68d686c9a09f16196e134cab36d16007377c53f54c49ba83bc7efdb",
            description="FIVR videos removed from the database in the 'hard' evaluation",
            kind=ANNOTATION, option="--easy-duplicates",
        ),
        Artifact(
            name="fivr200k_official",
            url="https://raw.githubusercontent.com/MKLab-ITI/FIVR-200K/master/dataset/annotation.json",
            filename="fivr200k_annotation.json",
            sha256="ccd343bd1c442142da3b2ef9e571ae888d44ac039fd02de708b0be820385a3ea",
            description="The official FIVR-200K annotation (same labels as the FIVR pickle)",
            kind=ANNOTATION, option="--annotations",
        ),
        Artifact(
            name="evve",
            url=f"{_GKORDO}/evve.pickle",
            filename="evve.pickle",
            sha256="0898fafc817b9457be25cafeefa996d78d1021fb4816a9e3c1a14b7493023410",
            description="EVVE events, queries and database",
            kind=ANNOTATION, option="--annotations",
        ),
        Artifact(
            name="cc_web_video",
            url=f"{_GKORDO}/cc_web_video.pickle",
            filename="cc_web_video.pickle",
            sha256="6c33932cfa6ed08eb02fb47189b38bcef124c07794e99adf5c04163dcf4c52fe",
            description="CC_WEB_VIDEO index, query sets, ground truth and excluded videos",
            kind=ANNOTATION, option="--annotations",
        ),
        Artifact(
            name="vcdb",
            url="https://raw.githubusercontent.com/xwen99/temporal_context_aggregation/master/datasets/vcdb.pickle",
            filename="vcdb.pickle",
            sha256="6cec73506f401c4dc6d0af2757b2927307cff1dcb6f1c5d9d6775e358fefe4bf",
            description="VCDB copy pairs among the 528 core videos, and the distractors",
            kind=ANNOTATION, option="--annotations",
        ),
    )
}


def artifacts_of(kind: str) -> dict[str, Artifact]:
    """The artifacts of one kind (backbone, whitening, network, annotation), by name."""
    return {name: a for name, a in ARTIFACTS.items() if a.kind == kind}


def choices(kind: str) -> dict[str, str]:
    """What users type for the files of one kind -> artifact name, e.g. {'imagenet': 'resnet50_imagenet'}."""
    return {a.choice: name for name, a in artifacts_of(kind).items()}


def help_names(kind: str) -> str:
    """The published choices of one kind for help text: 'imagenet', 's2vs_dns or s2vs_vcdb'."""
    names = list(choices(kind))
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def available_models() -> list[str]:
    """Names of the published similarity networks."""
    return list(artifacts_of(NETWORK))


def looks_like_path(spec: str) -> bool:
    """Whether a weights option's value is meant as a file: it has a folder separator or a .pth/.pt/.npz suffix."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(s in spec for s in separators) or Path(spec).suffix.lower() in {".pth", ".pt", ".npz"}


def is_weights_name(spec: str, kind: str) -> bool:
    """Whether `spec` is a word a weights option of `kind` takes (a published name, random, none), not a path."""
    return spec in choices(kind) or spec in BUILT_IN[kind]


def check_weights_choice(spec: str, kind: str) -> None:
    """UnknownWeightsError (a usage error) unless `spec` is a published name, a built-in word, an existing file or
    meant as a path (whose absence is reported when it is loaded)."""
    if is_weights_name(spec, kind) or looks_like_path(spec) or Path(spec).expanduser().is_file():
        return
    names = ", ".join([*sorted(choices(kind)), *BUILT_IN[kind]])
    raise UnknownWeightsError(f"unknown {WEIGHTS_WORD[kind]} '{spec}': use {names} or a file path")
