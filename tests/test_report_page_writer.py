"""write_page without a browser: image files by content hash, relative video URLs, JSON that cannot escape."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from s2vs_cli.errors import S2VSError
from s2vs_cli.report.images import PendingImage, ReportImage
from s2vs_cli.report.page import embed_json, write_page

ASSETS = Path(__file__).resolve().parents[1] / "s2vs_cli" / "report" / "assets"
DATA = re.compile(r'<script type="application/json" id="review-data">(.*?)</script>', re.S)


def _embedded(page: Path) -> dict:
    """The document as the browser would read it: the text up to the first `</script>` must be all of it."""
    return json.loads(DATA.search(page.read_text(encoding="utf-8")).group(1))


def _resolved(image: ReportImage | None) -> PendingImage:
    pending = PendingImage()
    pending.image = image
    return pending


def test_images_become_files_named_by_content_and_shared(tmp_path):
    png, jpg = ReportImage(b"\x89PNG same bytes", "png"), ReportImage(b"\xff\xd8 a jpeg", "jpg")
    document = {"a": png, "b": [ReportImage(b"\x89PNG same bytes", "png"), _resolved(jpg)],
                "c": _resolved(None), "d": PendingImage(), "e": None}
    page = write_page(document, tmp_path / "out" / "review.html")
    assert page == tmp_path / "out" / "review.html"
    png_name, jpg_name = (f"{hashlib.sha1(i.data).hexdigest()[:16]}.{i.suffix}" for i in (png, jpg))
    assert sorted(p.name for p in (tmp_path / "out" / "review_files").iterdir()) == sorted([png_name, jpg_name])
    assert _embedded(page) == {"a": f"review_files/{png_name}", "b": [f"review_files/{png_name}",
                               f"review_files/{jpg_name}"], "c": None, "d": None, "e": None}
    assert (tmp_path / "out" / "review_files" / jpg_name).read_bytes() == jpg.data


def test_no_images_no_files_folder_and_rewriting_keeps_files(tmp_path):
    write_page({"title": "plain"}, tmp_path / "plain.html")
    assert not (tmp_path / "plain_files").exists()
    image = {"i": ReportImage(b"bytes", "png")}
    write_page(image, tmp_path / "r.html")
    (tmp_path / "r_files" / "stale.png").write_bytes(b"old")
    write_page(image, tmp_path / "r.html")  # stale files stay, unreferenced
    assert sorted(p.name for p in (tmp_path / "r_files").iterdir())[-1] == "stale.png"
    assert len(list((tmp_path / "r_files").iterdir())) == 2


def test_video_paths_become_quoted_urls_relative_to_the_page(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir()
    monkeypatch.chdir(tmp_path)
    document = {"absolute": videos / "my clip #1?.mp4", "relative": Path("videos/a&b 'c'.mp4"),
                "beside": tmp_path / "reports" / "x.mkv", "nested": [Path("ünï.mp4")]}
    data = _embedded(write_page(document, Path("reports") / "page.html"))
    assert data == {"absolute": "../videos/my%20clip%20%231%3F.mp4", "relative": "../videos/a%26b%20%27c%27.mp4",
                    "beside": "x.mkv", "nested": ["../%C3%BCn%C3%AF.mp4"]}


def test_embedded_json_cannot_end_the_script_element(tmp_path):
    hostile = "</script><script>alert(1)</script> <!-- \u2028\u2029 & \"quote\" 'single' <img src=x onerror=alert(1)>"
    page = write_page({"title": hostile, "queries": [{"id": hostile, "hits": []}]}, tmp_path / "h.html")
    html = page.read_text(encoding="utf-8")
    assert _embedded(page) == {"title": hostile, "queries": [{"id": hostile, "hits": []}]}
    assert html.count("</script>") == 2  # the data's element and the code's: none from the data
    assert "<!--" not in DATA.search(html).group(1) and "\u2028" not in html
    assert set(embed_json("<>&\u2028\u2029")) <= set('"\\u0123456789abcdef')


def test_numbers_become_plain_json_values(tmp_path):
    document = {"nan": float("nan"), "inf": float("inf"), "np": np.float32(0.5), "int": np.int64(3), "flag": True,
                "tuple": (1, 2.5)}
    assert _embedded(write_page(document, tmp_path / "n.html")) == \
        {"nan": None, "inf": None, "np": 0.5, "int": 3, "flag": True, "tuple": [1, 2.5]}
    with pytest.raises(TypeError, match="set"):
        write_page({"bad": {1, 2}}, tmp_path / "bad.html")


def test_page_inlines_its_assets_and_names_what_cannot_be_written(tmp_path):
    html = write_page({"title": "t"}, tmp_path / "p.html").read_text(encoding="utf-8")
    assert "function formatTime" in html and "--viridis" in html
    assert "@DATA@" not in html and "/*@JS@*/" not in html and "/*@CSS@*/" not in html
    assert not re.search(r"\b(src|href)=\"?https?:", html)  # nothing fetched from the network
    for name in ("review.js", "review.css"):
        assert "</script" not in (ASSETS / name).read_text() and "</style" not in (ASSETS / name).read_text()
    (tmp_path / "file").write_text("")
    with pytest.raises(S2VSError, match=r"file/p\.html: cannot write the report"):
        write_page({}, tmp_path / "file" / "p.html")
