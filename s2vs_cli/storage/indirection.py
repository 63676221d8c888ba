"""HDF5 indirection: a video's features are read only from its own dataset, in the feature file itself.

HDF5 lets a name lead elsewhere: a soft link to another dataset, an external link into another file, a
dataset whose raw data lies in an external file (`create_dataset(..., external=...)`), a virtual dataset
mapped from other datasets or files. Followed, they make one video read another's features, or any file's
bytes as features (a system file scored 1.0 against every video). s2vs never writes them, so every read
refuses them, naming the video (`open_video`, what FeatureStore and merges open a video with), and the listing
of a file's videos (`video_names`) includes every link, so that one is named rather than silently skipped.

Cheap enough for search's hot path: one link query per component of the id (about 2 µs) and the dataset's
creation properties (about 12 µs), on an object opened directly, which saves about as much as they cost over
h5py's own lookup (`group[name]`, 40 µs). A second hard link to one dataset is not indirection: both names
read the same bytes, which are checked like any others.
"""
from __future__ import annotations

import h5py
from h5py import h5d, h5i, h5l, h5o, h5z

from ..errors import FeatureStoreError

# What a refused video is told it is, after "'<id>' is ...; " (see FeatureStore for the whole line).
NOT_FOLLOWED = "s2vs reads features only from the file's own datasets"


class StoredElsewhere(FeatureStoreError):
    """A name whose features are not in its own dataset of the file; the message says what it is instead."""


def open_video(group: h5py.Group, video_id: str) -> tuple[h5py.Dataset, bool]:
    """The dataset of `video_id` under `group`, and whether its chunks carry Fletcher-32 checksums.

    KeyError when no dataset has that name; StoredElsewhere when the name, or a group on its path, is a
    link, or the dataset's data lies outside it (external storage, a virtual dataset).
    """
    name = video_id.encode("utf-8", "surrogateescape")
    links = group.id.links
    parts = name.split(b"/")
    for depth, part in enumerate(parts):
        if not part:
            continue
        prefix = b"/".join(parts[:depth + 1])
        try:
            kind = links.get_info(prefix).type
        except RuntimeError:  # HDF5 says "name doesn't exist" this way; any other failure is damage
            if not links.exists(prefix):
                raise KeyError(video_id) from None
            raise
        if kind != h5l.TYPE_HARD:
            where = "" if prefix == name else f"under '{prefix.decode('utf-8', 'replace')}', "
            raise StoredElsewhere(where + _link(links, prefix, kind))
    opened = h5o.open(group.id, name)
    if h5i.get_type(opened) != h5i.DATASET:
        raise KeyError(video_id)
    creation = opened.get_create_plist()
    layout = creation.get_layout()
    if layout == h5d.VIRTUAL:
        raise StoredElsewhere("an HDF5 virtual dataset (its data is read from other datasets)")
    if creation.get_external_count():
        raise StoredElsewhere(f"stored in another file ({_text(creation.get_external(0)[0])})")
    checksummed = layout == h5d.CHUNKED and any(creation.get_filter(i)[0] == h5z.FILTER_FLETCHER32
                                                for i in range(creation.get_nfilters()))
    return h5py.Dataset(opened, readonly=True), checksummed


def video_names(group: h5py.Group) -> list[str]:
    """Paths of every dataset under `group` (its video ids) and of every soft or external link (which reads
    refuse by name), depth first in HDF5's (sorted) order; links are listed, never followed."""
    names: list[str] = []
    failed: list[Exception] = []

    def visit(name: bytes, info) -> bool | None:
        try:
            if info.type != h5l.TYPE_HARD or h5o.get_info(group.id, name).type == h5o.TYPE_DATASET:
                names.append(name.decode("utf-8", "surrogateescape"))
        except Exception as e:  # a garbled object: raised below, as HDF5 cannot carry it through its callback
            failed.append(e)
            return True  # stops the visit
        return None

    group.id.links.visit(visit, info=True)  # 3-7 µs a name; h5py's visititems opens every object (65 µs)
    if failed:
        raise failed[0]
    return names


def _link(links, name: bytes, kind: int) -> str:
    if kind == h5l.TYPE_SOFT:
        return f"an HDF5 soft link to {_text(links.get_val(name))}"
    if kind == h5l.TYPE_EXTERNAL:
        file, path = links.get_val(name)
        return f"an HDF5 external link to {_text(file)}:{_text(path)}"
    return f"an HDF5 link of a user-defined kind ({kind})"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
