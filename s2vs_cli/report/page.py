"""Write a review document (document.py) as one self-contained HTML page, its images in a folder beside it.

The page is static: the document travels as JSON inside it and the inlined script (assets/review.js) builds
the view in the browser, so the page works from file:// and offline. Images become files named by the hash
of their bytes in `<stem>_files/`; video paths become URLs relative to the page's folder, so the page keeps
working when its folder is moved together with the videos.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from importlib import resources
from pathlib import Path, PurePath
from urllib.parse import quote

from ..errors import S2VSError
from .document import PendingImage, ReportImage

# Characters that could end the <script> element or break a JavaScript parser, as JSON escapes.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})
_PLACEHOLDER = re.compile(r"/\*@(CSS|JS)@\*/|@DATA@")
_IMAGE_SUFFIXES = {"png", "jpg", "jpeg", "webp", "gif"}


def write_page(document: dict, path: str | Path) -> Path:
    """Write `document` as the HTML page `path` (plus `<stem>_files/` for its images); return the page's path."""
    page = Path(path)
    folder = page.parent
    files = folder / f"{page.stem}_files"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = _PageData(Path(os.path.abspath(folder)), files).convert(document)
        page.write_text(render_html(data), encoding="utf-8")
    except OSError as e:
        raise S2VSError(f"{page}: cannot write the report ({e.strerror or e})") from None
    return page


def render_html(data: dict) -> str:
    """The page's HTML for a document already reduced to JSON values (URLs in place of images and paths)."""
    parts = {"CSS": _asset("review.css"), "JS": _asset("review.js"), "DATA": embed_json(data)}
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
        self.written: set[str] = set()

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
            self.files.mkdir(exist_ok=True)
            target = self.files / name
            # Same name means same bytes, so a file left by an earlier write of this page is reused as is.
            if not target.is_file() or target.stat().st_size != len(image.data):
                target.write_bytes(image.data)
            self.written.add(name)
        return f"{quote(self.files.name)}/{name}"

    def _video_url(self, video: PurePath) -> str:
        # abspath, not resolve: a video reached through a symbolic link keeps that link's location.
        location = os.path.abspath(video)
        try:
            relative = os.path.relpath(location, self.page_folder)
        except ValueError:  # another drive (Windows): only an absolute URL can reach it
            return Path(location).as_uri()
        return quote(relative.replace(os.sep, "/"), safe="/")
