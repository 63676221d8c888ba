"""Write a review document (document.py) as one self-contained HTML page, its images in a folder beside it.

The page is static: the document travels as JSON inside it and the inlined script (assets/review.js) builds
the view in the browser, so the page works from file:// and offline. Images become files named by the hash
of their bytes in `<stem>_files/`; video paths become URLs relative to the page's folder, so the page keeps
working when its folder is moved together with the videos.

Every file is written whole (atomic.py), the images first and the page last, so the page in place always
finds its images. A write that fails leaves the previous page and its images as they were; once a new page
is in place, the images it no longer shows are removed. An image is known to be the report's own by its
name: the hash of its bytes, which a user's file (or one of ours damaged since) does not match.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from importlib import resources
from pathlib import Path, PurePath
from urllib.parse import quote

from ..atomic import OutputWriteError, remove_stale_temporaries, write_bytes_atomically, write_text_atomically
from ..errors import S2VSError
from .images import PendingImage, ReportImage

# Characters that could end the <script> element or break a JavaScript parser, as JSON escapes.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})
_PLACEHOLDER = re.compile(r"/\*@(CSS|JS)@\*/|@DATA@")
_IMAGE_SUFFIXES = {"png", "jpg", "jpeg", "webp", "gif"}
# document kind -> its own scripts (in assets/, run in this order before review.js) and styles
KIND_ASSETS = {"dedup": (("dedup_marks.js", "dedup.js"), ("dedup.css",))}
_IMAGE_NAME = re.compile(r"(?P<digest>[0-9a-f]{16})\.(?:" + "|".join(sorted(_IMAGE_SUFFIXES)) + ")")


def write_page(document: dict, path: str | Path) -> Path:
    """Write `document` as the HTML page `path` (plus `<stem>_files/` for its images); return the page's path."""
    page = Path(path)
    folder = page.parent
    files = folder / f"{page.stem}_files"
    converter = _PageData(Path(os.path.abspath(folder)), files)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomically(page, render_html(converter.convert(document)))
        except BaseException:
            converter.remove_created()  # the previous page is still in place, showing its own images
            raise
    except OutputWriteError as e:
        raise S2VSError(f"{page}: cannot write the report ({e.reason})") from None
    except OSError as e:
        raise S2VSError(f"{page}: cannot write the report ({e.strerror or e})") from None
    _remove_stale_images(files, keep=converter.written)
    return page


def _remove_stale_images(files: Path, keep: set[str]) -> None:
    """Delete the report's own images in `files` other than `keep` (and leftovers of killed writes); the
    folder too when that empties it. A file whose name is not the hash of its bytes is not ours: it stays."""
    remove_stale_temporaries(files)
    try:
        entries = [entry for entry in os.scandir(files) if entry.name not in keep]
    except OSError:
        return  # no folder: a page without images
    for entry in entries:
        found = _IMAGE_NAME.fullmatch(entry.name)
        if found and entry.is_file(follow_symlinks=False) and _digest(Path(entry.path)) == found["digest"]:
            with contextlib.suppress(OSError):  # the new page is in place: an image left over does no harm
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        files.rmdir()  # only when empty


def _digest(path: Path) -> str | None:
    """The name an image of these bytes gets (the first 16 hex digits of their SHA-1), None when unreadable."""
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def render_html(data: dict) -> str:
    """The page's HTML for a document already reduced to JSON values (URLs in place of images and paths)."""
    # A kind with a page of its own brings its script (run first: it registers its builder) and its styles.
    own = KIND_ASSETS.get(data.get("kind")) if isinstance(data.get("kind"), str) else None
    css, js = ("review.css",), ("review.js",)
    if own is not None:
        scripts, styles = own
        css, js = css + styles, scripts + js
    parts = {"CSS": "\n".join(map(_asset, css)), "JS": "\n".join(map(_asset, js)), "DATA": embed_json(data)}
    # One pass over the template only: nothing inserted is searched for placeholders again.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1) or "DATA"], _asset("review.html"))


def embed_json(data: object) -> str:
    """`data` as JSON that can sit inside a <script> element: no string in it can close the element."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).translate(_SCRIPT_SAFE)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


class _PageData:
    """Turns a document into plain JSON values: images written to the files folder, paths made relative URLs."""

    def __init__(self, page_folder: Path, files: Path):
        self.page_folder = page_folder
        self.files = files
        self.written: set[str] = set()      # names of the images the page shows
        self.created: list[Path] = []       # files and folder this write added, removed again if it fails

    def convert(self, value: object) -> object:
        """`value` with every image, path and non-JSON number replaced by what the page reads."""
        if isinstance(value, dict):
            return {str(key): self.convert(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.convert(item) for item in value]
        if isinstance(value, PendingImage):
            return self.convert(value.image)
        if isinstance(value, ReportImage):
            return self._image_url(value)
        if isinstance(value, PurePath):
            return self._video_url(value)
        if value is None or isinstance(value, (str, bool)):
            return value
        if hasattr(value, "item") and not isinstance(value, (int, float)):
            return self.convert(value.item())  # a numpy scalar
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else None  # JSON.parse rejects NaN and Infinity
        raise TypeError(f"a review document cannot hold {type(value).__name__} values")

    def _image_url(self, image: ReportImage) -> str:
        suffix = image.suffix.lower().lstrip(".")
        if suffix not in _IMAGE_SUFFIXES:
            raise ValueError(f"unsupported image suffix {image.suffix!r}")
        name = f"{hashlib.sha1(image.data).hexdigest()[:16]}.{suffix}"
        if name not in self.written:
            target = self.files / name
            if not _holds(target, image.data):  # an earlier write's file with these very bytes is reused
                if not self.files.is_dir():
                    self.files.mkdir()
                    self.created.append(self.files)
                existed = target.exists()
                write_bytes_atomically(target, image.data)
                if not existed:
                    self.created.append(target)
            self.written.add(name)
        return f"{quote(self.files.name)}/{name}"

    def remove_created(self) -> None:
        """Take away what this write added (after a failure): the files folder is then as it was before."""
        for path in reversed(self.created):  # the folder last, once its new files are gone
            with contextlib.suppress(OSError):
                if path == self.files:
                    path.rmdir()
                else:
                    path.unlink()

    def _video_url(self, video: PurePath) -> str:
        # abspath, not resolve: a video reached through a symbolic link keeps that link's location.
        location = os.path.abspath(video)
        try:
            relative = os.path.relpath(location, self.page_folder)
        except ValueError:  # another drive (Windows): only an absolute URL can reach it
            return Path(location).as_uri()
        return quote(relative.replace(os.sep, "/"), safe="/")


def _holds(path: Path, data: bytes) -> bool:
    """Whether `path` is a file holding exactly `data`."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
