"""The search index's catalogue: each indexed video's id, frame count and content digest, in numpy arrays.

A video's number (its place in the catalogue) is what the faiss index and the frame descriptors know it
by; the catalogue turns numbers back into ids and tells whether the store still holds what was indexed.
As Python lists (index version 4 and before) it held 163 bytes a video, 1.6 GB at ten million (1.9 GB of
RSS, measured); these arrays hold the ids' UTF-8 bytes plus 21 bytes a video (0.47 GB at ten million ids
of 11-40 characters), and nothing per video becomes a Python object unless asked for by number:
- ids: one UTF-8 byte string of every id in turn (`id_bytes`) and where each starts (`id_offsets`, n + 1);
- frames: int32;
- digests: uint64 with a kind per video (`digest_kinds`): NO_DIGEST (the store records none), HEX_DIGEST
  (the 16 hex characters storage/integrity.content_digest writes, as their 64-bit value) or HASHED_DIGEST
  (any other text, as the first 8 bytes of its BLAKE2b: only compared, never shown).
Saved as one uncompressed `catalogue.npz` in the index folder (its size and CRC-32 recorded in videos.json
and checked before numpy reads it, like the index's other files); `check` then applies, vectorised, the
rules a catalogue must keep: ids unique, valid UTF-8 cut at character boundaries; frame counts
non-negative; digest kinds known; every array the right length. Ids are matched (uniqueness, `compare`
with the store's catalogue) by a 64-bit hash of their bytes, sorted; equal hashes are then compared byte by
byte, so a collision costs time, never a wrong answer. At ten million videos `check` takes about 2 s.
`read_catalogue` makes the store's catalogue the same way, without keeping an object per video.
"""
from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..progress import SILENT, Progress
from .index_checks import SearchIndexError
from .store import FeatureStore

FILE = "catalogue.npz"
DTYPES = {"id_bytes": np.dtype(np.uint8), "id_offsets": np.dtype(np.int64), "frames": np.dtype(np.int32),
          "digests": np.dtype(np.uint64), "digest_kinds": np.dtype(np.uint8)}
UTF8_BLOCK = 1 << 24       # bytes of ids decoded at a time by the UTF-8 check
NO_DIGEST, HEX_DIGEST, HASHED_DIGEST = 0, 1, 2
_HASH_SEED, _HASH_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x9E3779B97F4A7C15)
_LOW_BYTES = np.array([(1 << 8 * n) - 1 for n in range(8)], dtype=np.uint64)  # masks of a word's first n bytes


class VideoIds(Sequence):
    """The catalogue's ids, decoded one at a time: ids[v] is video v's id."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self._data, self._offsets = data, offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, number):
        if isinstance(number, slice):
            return [self[v] for v in range(*number.indices(len(self)))]
        number = range(len(self))[number]  # negative numbers count from the end; IndexError past it
        return self._data[self._offsets[number]:self._offsets[number + 1]].tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[v] for v in range(len(self)))

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.number(video_id) is not None

    def number(self, video_id: str) -> int | None:
        """The number of the video with this id, or None (vectorised: no per-video Python objects)."""
        wanted = np.frombuffer(video_id.encode("utf-8"), dtype=np.uint8)
        lengths = np.diff(self._offsets)
        same = np.flatnonzero(lengths == len(wanted))
        for position, byte in enumerate(wanted):  # narrow the candidates a character at a time
            same = same[self._data[self._offsets[same] + position] == byte]
        return int(same[0]) if len(same) else None


class VideoCatalogue:
    """What the index holds, per video numbered 0..n-1: its id, frame count and content digest."""

    def __init__(self, id_bytes: np.ndarray | None = None, id_offsets: np.ndarray | None = None,
                 frames: np.ndarray | None = None, digests: np.ndarray | None = None,
                 digest_kinds: np.ndarray | None = None):
        self.id_bytes = np.zeros(0, np.uint8) if id_bytes is None else id_bytes
        self.id_offsets = np.zeros(1, np.int64) if id_offsets is None else id_offsets
        self.frames = np.zeros(0, np.int32) if frames is None else frames
        self.digests = np.zeros(0, np.uint64) if digests is None else digests
        self.digest_kinds = np.zeros(0, np.uint8) if digest_kinds is None else digest_kinds

    @property
    def ids(self) -> VideoIds:
        return VideoIds(self.id_bytes, self.id_offsets)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def nbytes(self) -> int:
        """Bytes its arrays hold."""
        return sum(a.nbytes for a in self._arrays().values())

    @classmethod
    def from_lists(cls, ids: Sequence[str], frames: Sequence[int], digests: Sequence[str | None]) -> "VideoCatalogue":
        """A catalogue of these videos (the lists are not kept)."""
        builder = CatalogueBuilder()
        for video_id, count, digest in zip(ids, frames, digests, strict=True):
            builder.add(video_id, count, digest)
        return builder.finish()

    def extended(self, other: "VideoCatalogue") -> "VideoCatalogue":
        """This catalogue's videos, then `other`'s, numbered on from this one's."""
        return VideoCatalogue(np.concatenate([self.id_bytes, other.id_bytes]),
                              np.concatenate([self.id_offsets, other.id_offsets[1:] + self.id_offsets[-1]]),
                              *(np.concatenate([getattr(self, name), getattr(other, name)])
                                for name in ("frames", "digests", "digest_kinds")))

    def select(self, numbers: np.ndarray) -> "VideoCatalogue":
        """The videos `numbers`, in that order, numbered 0..len(numbers)-1."""
        numbers = np.asarray(numbers, dtype=np.int64)
        starts, lengths = self.id_offsets[numbers], np.diff(self.id_offsets)[numbers]
        offsets = np.zeros(len(numbers) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return VideoCatalogue(self.id_bytes[gather], offsets, self.frames[numbers], self.digests[numbers],
                              self.digest_kinds[numbers])

    def compare(self, now: "VideoCatalogue") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Against the store's catalogue `now`: (numbers here of videos that left the store, numbers here of
        videos whose frame count or digest changed, numbers in `now` of videos not here), vectorised by
        matching ids on a 64-bit hash of their bytes and then checking the bytes of every match."""
        mine, theirs = id_hashes(self.id_bytes, self.id_offsets), id_hashes(now.id_bytes, now.id_offsets)
        order, mine_order = np.argsort(theirs), np.argsort(mine)  # both sorted: the search reads in order
        place = np.empty(len(mine), np.int64)
        place[mine_order] = np.minimum(np.searchsorted(theirs[order], mine[mine_order]), max(len(order) - 1, 0))
        match = order[place] if len(order) else np.zeros(len(mine), np.int64)
        found = (theirs[match] == mine) if len(order) else np.zeros(len(mine), bool)
        hashed = np.flatnonzero(found)
        collided = hashed[~_same_ids(self, hashed, now, match[hashed])]
        for number in collided:  # equal hashes, other ids (about never at 64 bits): looked up exactly
            other = now.ids.number(self.ids[number])
            found[number], match[number] = other is not None, -1 if other is None else other
        kept = np.flatnonzero(found)
        other = match[kept]
        changed = kept[(self.frames[kept] != now.frames[other]) | (self.digest_kinds[kept] != now.digest_kinds[other])
                       | (self.digests[kept] != now.digests[other])]
        known = np.zeros(len(now), bool)
        known[other] = True
        return np.flatnonzero(~found), changed, np.flatnonzero(~known)

    def check(self, folder: Path) -> None:
        """SearchIndexError (one line naming `folder`) unless the arrays form a sound catalogue."""
        n, data, offsets = len(self.frames), self.id_bytes, self.id_offsets
        for name, array in self._arrays().items():
            if array.ndim != 1 or array.dtype != DTYPES[name]:
                raise SearchIndexError(f"{folder}: {FILE} has a malformed {name} ({array.dtype}, {array.ndim}-D)")
        if not len(offsets) - 1 == n == len(self.digests) == len(self.digest_kinds):
            raise SearchIndexError(f"{folder}: {FILE} lists {len(offsets) - 1} ids, {n} frame counts, "
                                   f"{len(self.digests)} digests and {len(self.digest_kinds)} digest kinds")
        if offsets[0] != 0 or offsets[-1] != len(data) or (np.diff(offsets) < 0).any():
            raise SearchIndexError(f"{folder}: {FILE} has id offsets that do not cut its id bytes in order")
        if not _utf8(data, offsets):
            raise SearchIndexError(f"{folder}: {FILE} has an id that is not UTF-8 text")
        if (self.frames < 0).any():
            raise SearchIndexError(f"{folder}: {FILE} has a negative frame count")
        if (self.digest_kinds > HASHED_DIGEST).any():
            raise SearchIndexError(f"{folder}: {FILE} has a digest of unknown kind")
        repeated = repeated_id(self)
        if repeated is not None:
            raise SearchIndexError(f"{folder}: {FILE} lists '{repeated}' twice")

    def save(self, path: Path) -> None:
        """Write the arrays to `path`, uncompressed."""
        with path.open("wb") as out:  # a file object: np.savez would add ".npz" to a temporary name
            np.savez(out, **self._arrays())

    @classmethod
    def load(cls, path: Path) -> "VideoCatalogue":
        """The catalogue saved at `path` (unchecked: see `check`)."""
        with np.load(path, allow_pickle=False) as saved:
            return cls(**{name: saved[name] for name in DTYPES})

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"id_bytes": self.id_bytes, "id_offsets": self.id_offsets, "frames": self.frames,
                "digests": self.digests, "digest_kinds": self.digest_kinds}


class CatalogueBuilder:
    """Collects videos one at a time into compact buffers (no Python object kept per video)."""

    def __init__(self):
        self._bytes, self._offsets = bytearray(), array("q", [0])
        self._frames, self._digests, self._kinds = array("i"), array("Q"), array("B")

    def add(self, video_id: str, frames: int, digest: str | None) -> None:
        """Append one video."""
        self._bytes += video_id.encode("utf-8")
        self._offsets.append(len(self._bytes))
        self._frames.append(frames)
        kind, value = encode_digest(digest)
        self._digests.append(value)
        self._kinds.append(kind)

    def finish(self) -> VideoCatalogue:
        """The catalogue of the videos added, in the order added."""
        return VideoCatalogue(np.frombuffer(self._bytes, np.uint8).copy(), np.asarray(self._offsets, np.int64),
                              np.asarray(self._frames, np.int32), np.asarray(self._digests, np.uint64),
                              np.asarray(self._kinds, np.uint8))


def _utf8(data: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether every id is UTF-8 text: no id starts inside a character, and the bytes decode (ASCII at a
    glance; otherwise a block of ids at a time, so no copy of all of them is made)."""
    starts = offsets[:-1][np.diff(offsets) > 0]
    if ((data[starts] & 0xC0) == 0x80).any():  # a continuation byte: the id before ends inside a character
        return False
    if not len(data) or data.max() < 0x80:
        return True
    cuts = np.unique(np.concatenate([offsets[np.searchsorted(offsets, np.arange(0, len(data), UTF8_BLOCK))],
                                     [len(data)]]))
    try:
        for start, end in zip(cuts[:-1], cuts[1:]):
            data[start:end].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_catalogue(store: FeatureStore, progress: Progress = SILENT, ids: Sequence[str] | None = None
                   ) -> VideoCatalogue:
    """Every video of the store (`ids`: its listing, when the caller has just made it) with its frame count and
    recorded digest."""
    builder = CatalogueBuilder()
    ids = store.ids() if ids is None else ids
    for done, video_id in enumerate(ids, 1):
        builder.add(video_id, *store.frames_and_digest(video_id))
        if done % 1000 == 0 or done == len(ids):
            progress.update(done, len(ids))
    return builder.finish()


def encode_digest(digest: str | None) -> tuple[int, int]:
    """(kind, 64-bit value) of a content digest as the store records it (see the module's docstring)."""
    if digest is None:
        return NO_DIGEST, 0
    if len(digest) == 16 and digest == digest.lower():
        try:
            return HEX_DIGEST, int(digest, 16)
        except ValueError:
            pass
    return HASHED_DIGEST, int.from_bytes(hashlib.blake2b(digest.encode("utf-8", "surrogatepass"),
                                                         digest_size=8).digest(), "little")


def _word_reader(data: np.ndarray):
    """A function giving the 8 bytes of `data` at each of some positions as one little-endian uint64 (zeros
    past its end), read in place: no copy of the data, one gather per call."""
    whole = len(data) - 7  # a word starting before this lies wholly inside the data
    words = np.ndarray((max(whole, 0),), dtype="<u8", buffer=data, strides=(1,))  # words[i]: bytes i..i+7
    last = max(len(data) - 8, 0)
    ending = np.zeros(16, np.uint8)  # the last (up to) 8 bytes, then zeros: for words running off the end
    ending[:len(data) - last] = data[last:]
    end_words = np.ndarray((8,), dtype="<u8", buffer=ending, strides=(1,))

    def read(positions: np.ndarray) -> np.ndarray:
        inside = positions < whole
        if inside.all():
            return words[positions]
        word = np.empty(len(positions), np.uint64)
        word[inside], word[~inside] = words[positions[inside]], end_words[positions[~inside] - last]
        return word
    return read


def id_hashes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each id's bytes alone, vectorised: one pass per 8 bytes of the longest id, reading
    the ids in file order (xor-multiply-shift per little-endian word; equal hashes are told apart by the
    caller). Few and in-place temporaries: at ten million ids each fresh array costs page faults."""
    lengths, starts, read = np.diff(offsets), offsets[:-1], _word_reader(data)
    hashes = np.full(len(lengths), _HASH_SEED, dtype=np.uint64)
    for position in range(0, int(lengths.max()) if len(lengths) else 0, 8):
        going = np.flatnonzero(lengths > position)  # the ids this long, in file order
        going = slice(None) if len(going) == len(lengths) else going  # (the first passes: no gathers)
        word, left = read(starts[going] + position), lengths[going] - position
        short = np.flatnonzero(left < 8)  # ids ending inside this word: keep only their bytes
        word[short] &= _LOW_BYTES[left[short]]
        mixed = hashes[going]
        mixed ^= word
        mixed *= _HASH_PRIME
        mixed ^= mixed >> np.uint64(32)
        hashes[going] = mixed
    hashes ^= lengths.astype(np.uint64)
    hashes *= _HASH_PRIME
    return hashes


def repeated_id(catalogue: VideoCatalogue) -> str | None:
    """An id listed more than once, or None: ids whose hashes are shared (found by sorting) compared as text."""
    hashes = id_hashes(catalogue.id_bytes, catalogue.id_offsets)
    ordered = np.sort(hashes)
    if not (ordered[1:] == ordered[:-1]).any():  # the usual case, told by a sort (faster than an argsort)
        return None
    order = np.argsort(hashes)
    shared = np.zeros(len(order), bool)
    twins = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    shared[twins], shared[twins + 1] = True, True
    seen: set[str] = set()
    for number in np.sort(order[shared]):  # none, unless an id repeats (or two collide: about never)
        if (video_id := catalogue.ids[number]) in seen:
            return video_id
        seen.add(video_id)
    return None


def _same_ids(a: VideoCatalogue, numbers_a: np.ndarray, b: VideoCatalogue, numbers_b: np.ndarray) -> np.ndarray:
    """Whether a's ids `numbers_a` equal b's `numbers_b`, pair by pair (their bytes compared 8 at a time)."""
    lengths = np.diff(a.id_offsets)[numbers_a]
    same = lengths == np.diff(b.id_offsets)[numbers_b]
    read_a, read_b = _word_reader(a.id_bytes), _word_reader(b.id_bytes)
    for position in range(0, int(lengths.max()) if len(lengths) else 0, 8):
        going = np.flatnonzero(same & (lengths > position))
        differ = read_a(a.id_offsets[numbers_a[going]] + position) ^ read_b(b.id_offsets[numbers_b[going]] + position)
        left = lengths[going] - position
        short = np.flatnonzero(left < 8)
        differ[short] &= _LOW_BYTES[left[short]]
        same[going] = differ == 0
    return same
