"""The review report at scale (issue 15): a 2-hour comparison and a 100-query x 20-hit search, built through the
library's own paths, written with write_page, and opened in headless Chromium.

    python benchmarks/bench_report.py all --folder DIR [--repeats 3]
runs the stages below in turn, each in its own process (so each peak memory figure is its own stage's):
    make     once: the videos, the feature file and its index (what DIR already holds is kept)
    compare  two 2-hour videos: compare_features (features only) on a 7,200 x 7,200 frame map, then
             compare_document (the heatmap entry of the whole map, thumbnails decoded from the 2-hour files)
             and write_page, each timed
    search   `s2vs search v0000 .. v0099 --features-only --report OUT.html --report-videos DIR` as the CLI runs
             it: start_search(heatmap=...) (index, top 20, each located hit keeps its heatmap PNG), then
             search_document and write_page; searching, heatmaps, duration probes and thumbnails timed apart
    browser  each page opened in a fresh headless Chromium (tests/browser_support.py), --repeats times: the
             navigation's DOMContentLoaded (the inline script has built every query section by then), first
             contentful paint and load event (the images shown at load included); then, on the search page, a
             hit row clicked until its pair view is built and its heatmap (and thumbnails) loaded, and on the
             compare page a match chosen until both players show its start. Medians printed.

The videos: H.264, 320x180, 5 fps, a key frame every 10 s, a new picture every 3 s (a bar moves across it). The
2-hour target shows the query's pictures where it copies it: five parts, 30-600 s, one at half speed; the
features (random, one 512-d vector a frame at 1 fps, the published files' layout) hold the same copies plus
noise. The search's collection: 400 videos, 30-120 s, each id a link to one of 48 clips as long as its
features; each of the 100 queries (stored ids) is copied (8-20 s, with noise) into 8 other videos.
A thumbnail decodes from the key frame before its time, so its cost grows with resolution, frame rate and
key-frame spacing: the search stage also times thumbnails of the real clips in ../shared/videos, for scale.
The machine may be shared: each timing is printed with the 1-minute load average. On a busy 2-core machine
torch's default of 2 threads made the search itself 8x slower (0.5 -> 3.8 s a query; the report's own stages are
not torch): `--threads 1` keeps the search's figure steady there.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "videos"
SEED = 0
DIMS = 512
WIDTH, HEIGHT, RATE, GOP = 320, 180, 5, 50  # a key frame every 10 s
SCENE_SECONDS = 3
LONG_SECONDS = 7200
QUERY_SEED, TARGET_SEED, CLIP_SEED = 1, 2, 100
# Copied parts of the 2-hour pair: (query start, target start, seconds of query, target seconds per query second).
PLANTED = ((300, 5000, 100, 1), (2000, 100, 300, 2), (4000, 4000, 60, 1), (6000, 2500, 600, 1), (1000, 6500, 30, 1))
STORE_VIDEOS, QUERIES, COPIES, CLIPS = 400, 100, 8, 48


# --------------------------------------------------------------------------- measuring
def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def memory(field: str) -> float:
    """VmHWM (peak since the last reset_peak) or VmRSS of this process, in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: clear_refs 5), so a peak is one stage's own."""
    Path("/proc/self/clear_refs").write_text("5")


def timed(function):
    """`function`, adding up the seconds spent in it in `.seconds` (a function, so it still binds as a method)."""
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            wrapper.seconds += time.perf_counter() - started
    wrapper.seconds = 0.0
    return wrapper


def files_size(page: Path) -> tuple[int, float]:
    files = list((page.parent / f"{page.stem}_files").iterdir())
    return len(files), sum(p.stat().st_size for p in files) / 1e6


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, Python {platform.python_version()}"


# --------------------------------------------------------------------------- making the inputs
@functools.lru_cache(maxsize=256)
def scene(seed: int, number: int) -> np.ndarray:
    """The picture of scene `number` of video `seed`: a colour and four rectangles."""
    rng = np.random.default_rng([seed, number])
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = rng.integers(30, 226, 3)
    for _ in range(4):
        y, x = rng.integers(0, HEIGHT - 40), rng.integers(0, WIDTH - 60)
        image[y:y + 40, x:x + 60] = rng.integers(0, 256, 3)
    return image


def write_clip(path: Path, seconds: int, source) -> None:
    """An H.264 file of `seconds`; `source(t)` says whose picture shows at t: (video seed, that video's time)."""
    import av

    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"g": str(GOP), "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for number in range(seconds * RATE):
            seed, at = source(number / RATE)
            image = scene(seed, int(at // SCENE_SECONDS)).copy()
            bar = number * 8 % WIDTH
            image[:, bar:bar + 6] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    partial.rename(path)


def target_source(second: float) -> tuple[int, float]:
    """What the 2-hour target shows at `second`: the query's picture where it copies it, else its own."""
    for query_start, target_start, length, slowdown in PLANTED:
        if target_start <= second < target_start + length * slowdown:
            return QUERY_SEED, query_start + (second - target_start) / slowdown
    return TARGET_SEED, second


def long_features() -> tuple[np.ndarray, np.ndarray]:
    """Features [7200, 1, 512] of the 2-hour pair, the target holding noisy copies of the planted parts."""
    rng = np.random.default_rng([SEED, 3])
    query = rng.standard_normal((LONG_SECONDS, 1, DIMS), dtype=np.float32)
    target = rng.standard_normal((LONG_SECONDS, 1, DIMS), dtype=np.float32)
    for query_start, target_start, length, slowdown in PLANTED:
        copy = np.repeat(query[query_start:query_start + length], slowdown, axis=0)
        target[target_start:target_start + len(copy)] = copy + 0.3 * rng.standard_normal(copy.shape, np.float32)
    return unit(query), unit(target)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clip_seconds() -> np.ndarray:
    return np.random.default_rng([SEED, 4]).integers(30, 121, CLIPS)


def make(folder: Path) -> None:
    """The 2-hour pair, the collection's clips, links and feature file with its index (each made once)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (("query", lambda t: (QUERY_SEED, t)), ("target", target_source)):
        path = folder / f"long_{name}.mp4"
        if not path.exists():
            started = time.perf_counter()
            write_clip(path, LONG_SECONDS, source)
            print(f"made {path.name}: {LONG_SECONDS / 3600:.0f} h, {path.stat().st_size / 1e6:.1f} MB in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    clips, videos = folder / "clips", folder / "videos"
    clips.mkdir(exist_ok=True)
    videos.mkdir(exist_ok=True)
    for k, seconds in enumerate(clip_seconds()):
        if not (clips / f"clip{k:02d}.mp4").exists():
            write_clip(clips / f"clip{k:02d}.mp4", int(seconds), lambda t, k=k: (CLIP_SEED + k, t))
    for i in range(STORE_VIDEOS):
        link = videos / f"v{i:04d}.mp4"
        if not link.is_symlink():
            link.symlink_to(Path("..") / "clips" / f"clip{i % CLIPS:02d}.mp4")
    if not (folder / "store.h5").exists():
        make_store(folder / "store.h5")


def make_store(path: Path) -> None:
    """The collection's features (its videos as long as their clips) with each query copied into COPIES others,
    and its search index."""
    from s2vs_cli.storage.index import open_index
    from s2vs_cli.storage.store import StoreIdentity, create_store, write_video

    rng = np.random.default_rng([SEED, 5])
    lengths = clip_seconds()[np.arange(STORE_VIDEOS) % CLIPS]
    raw = [rng.standard_normal((int(n), DIMS), dtype=np.float32) for n in lengths]
    for q in range(QUERIES):
        for t in rng.choice(np.arange(QUERIES, STORE_VIDEOS), COPIES, replace=False):
            length = int(rng.integers(8, 21))
            q0, t0 = (int(rng.integers(0, len(raw[v]) - length + 1)) for v in (q, t))
            raw[t][t0:t0 + length] = raw[q][q0:q0 + length] + 0.3 * rng.standard_normal((length, DIMS), np.float32)
    partial = path.with_suffix(".part.h5")
    with create_store(partial, StoreIdentity("synthetic", "synthetic", 1.0, DIMS, dtype="float16"), "bench") as out:
        for i, features in enumerate(raw):
            write_video(out, f"v{i:04d}", unit(features).astype(np.float16), {})
    partial.rename(path)
    started = time.perf_counter()
    index, update = open_index(path, rebuild=True)
    print(f"made {path.name}: {STORE_VIDEOS} videos, {QUERIES} queries copied {COPIES} times each; index "
          f"({index.kind}) built in {time.perf_counter() - started:.1f} s", flush=True)


# --------------------------------------------------------------------------- the stages
def compare(folder: Path) -> None:
    from s2vs_cli.scoring.pair import as_video_features, compare_features
    from s2vs_cli.report import compare_review
    from s2vs_cli.report.document import document_counts
    from s2vs_cli.report.page import write_page
    from s2vs_cli.report.thumbnails import ThumbnailBatch

    query_features, target_features = long_features()
    times = np.arange(LONG_SECONDS, dtype=np.float64)
    query = as_video_features(str(folder / "long_query.mp4"), query_features, times, 1.0)
    target = as_video_features(str(folder / "long_target.mp4"), target_features, times, 1.0)
    started = time.perf_counter()
    comparison = compare_features(query, target, None)
    print(f"compare_features (features only) on {comparison.frames[0]:,} x {comparison.frames[1]:,} frames: "
          f"{time.perf_counter() - started:.1f} s ({load()}); {len(comparison.matches)} matches "
          f"({len(PLANTED)} planted); peak RSS {memory('VmHWM'):.2f} GB")
    heatmap = compare_review.heatmap_entry = timed(compare_review.heatmap_entry)
    thumbnails = ThumbnailBatch.resolve = timed(ThumbnailBatch.resolve)
    reset_peak()
    before = memory("VmRSS")
    started = time.perf_counter()
    document = compare_review.compare_document(comparison, 1.0, model="features only", extractor=None,
                                               random_weights=False)
    built = time.perf_counter() - started
    counts = document_counts(document)
    print(f"compare_document: {built:.2f} s ({load()}): heatmap entry of the whole map {heatmap.seconds:.2f} s, "
          f"{2 * counts['matches']} thumbnails from the 2-hour files {thumbnails.seconds:.2f} s")
    page = folder / "pages" / "compare.html"
    shutil.rmtree(page.parent / "compare_files", ignore_errors=True)
    started = time.perf_counter()
    write_page(document, page)
    written = time.perf_counter() - started
    images, size = files_size(page)
    print(f"write_page: {written:.3f} s ({load()}); page {page.stat().st_size / 1e3:.0f} kB, {images} images "
          f"{size * 1e3:.0f} kB in compare_files/")
    print(f"peak RSS during document and page: {memory('VmHWM'):.2f} GB (RSS before them {before:.2f} GB: the "
          f"comparison holds the {comparison.frames[0]:,}^2 float32 map, "
          f"{comparison.frame_similarity.nbytes / 2**30:.2f} GB)")


def search(folder: Path, threads: int | None) -> None:
    import torch

    from s2vs_cli.config import SearchConfig
    from s2vs_cli.jobs.search import start_search
    from s2vs_cli.report import compare_review, document as document_module
    from s2vs_cli.report.document import document_counts
    from s2vs_cli.report.images import PendingImage
    from s2vs_cli.report.page import write_page
    from s2vs_cli.report.search_review import search_document
    from s2vs_cli.report.thumbnails import ThumbnailBatch
    from s2vs_cli.report.video_lookup import VideoFinder
    from s2vs_cli.runtime import Runtime

    heatmaps = timed(document_module.heatmap_entry)  # the search's heatmap maker
    durations = compare_review.video_duration = timed(compare_review.video_duration)
    thumbnails = ThumbnailBatch.resolve = timed(ThumbnailBatch.resolve)
    if threads:
        torch.set_num_threads(threads)
    cfg = SearchConfig(database=str(folder / "store.h5"), features_only=True)
    runtime = Runtime.start(cfg.device, cfg.precision, cfg.compile, cfg.seed)
    started = time.perf_counter()
    run = start_search([f"v{q:04d}" for q in range(QUERIES)], cfg, runtime, heatmap=heatmaps)
    with run:
        setup = time.perf_counter() - started
        started = time.perf_counter()
        for _ in run:
            pass
        searched = time.perf_counter() - started
        hits = [hit for result in run.results for hit in result.hits]
        latency = np.array([result.seconds for result in run.results])
        kept = [hit.heatmap["image"].data for hit in hits if hit.heatmap is not None]
        sides = np.array([(int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) for png in kept])
        print(f"search ({run.mode}, top {cfg.top_k}, features only, {runtime.device}, {torch.get_num_threads()} "
              f"torch threads): {QUERIES} queries in {searched:.1f} s ({load()}; set-up {setup:.1f} s; per query "
              f"median {np.median(latency):.2f} s, max {latency.max():.2f} s), {len(hits):,} hits; of which heatmap "
              f"PNGs {heatmaps.seconds:.2f} s ({heatmaps.seconds / max(len(kept), 1) * 1e3:.2f} ms each)")
        print(f"heatmaps kept in memory: {len(kept):,} PNGs, {sum(map(len, kept)) / 1e6:.2f} MB "
              f"(mean {np.mean([len(p) for p in kept]) / 1e3:.1f} kB, {sides[:, 0].mean():.0f} x "
              f"{sides[:, 1].mean():.0f} px); peak RSS of the search {memory('VmHWM'):.2f} GB")
        reset_peak()
        before = memory("VmRSS")
        started = time.perf_counter()
        document = search_document(run.results, run.summary(), run.query_videos, VideoFinder(folder / "videos"))
        built = time.perf_counter() - started
    counts = document_counts(document)
    thumbs = [m[side] for q in document["queries"] for h in q["hits"] for m in h["matches"]
              for side in ("query_thumb", "target_thumb")]
    decoded = sum(isinstance(t, PendingImage) and t.image is not None for t in thumbs)
    videos = {h["target_video"] for q in document["queries"] for h in q["hits"]} | \
        {q["video"] for q in document["queries"]}
    print(f"search_document: {built:.1f} s ({load()}): {decoded:,} thumbnails ({counts['matches']:,} matches, "
          f"{len(videos)} videos) {thumbnails.seconds:.1f} s, video durations probed {durations.seconds:.1f} s, "
          f"the rest {built - thumbnails.seconds - durations.seconds:.2f} s")
    page = folder / "pages" / "search.html"
    shutil.rmtree(page.parent / "search_files", ignore_errors=True)
    started = time.perf_counter()
    write_page(document, page)
    written = time.perf_counter() - started
    images, size = files_size(page)
    print(f"write_page: {written:.2f} s ({load()}); page {page.stat().st_size / 1e6:.2f} MB, {images:,} images "
          f"{size:.1f} MB in search_files/; peak RSS of document and page {memory('VmHWM'):.2f} GB (RSS before them "
          f"{before:.2f} GB)")
    real_thumbnails(decoded)


def real_thumbnails(count: int) -> None:
    """For scale: seconds a thumbnail of the real clips in ../shared/videos (8 a clip, spread over each), and
    what `count` of them would take."""
    from s2vs_cli.report.thumbnails import ThumbnailBatch, video_duration

    clips = sorted(SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []
    if not clips:
        return
    batch, asked = ThumbnailBatch(), []
    for clip in clips:
        seconds = video_duration(clip) or 0
        asked += [batch.request(clip, seconds * k / 8) for k in range(8)]
    started = time.perf_counter()
    batch.resolve()
    elapsed = time.perf_counter() - started
    print(f"for scale, real clips ({len(clips)} in {SHARED_VIDEOS.name}/, 176x144 to 1280x720, 10-30 fps): "
          f"{elapsed / len(asked) * 1e3:.0f} ms a thumbnail ({len(asked)} in {elapsed:.1f} s, {load()}); "
          f"{count:,} such thumbnails would take {count * elapsed / len(asked):.0f} s")


# --------------------------------------------------------------------------- the browser
NAVIGATION = """
const done = arguments[arguments.length - 1];
const wait = () => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  if (!nav || !nav.loadEventEnd || (!paint && performance.now() < 20000)) return setTimeout(wait, 10);
  done({dom: nav.domContentLoadedEventEnd, paint: paint ? paint.startTime : -1, load: nav.loadEventEnd,
        sections: document.querySelectorAll("section.query").length,
        hits: document.querySelectorAll("tr.hit").length, shown: document.images.length});
};
wait();
"""
# Scroll to the first hit of the middle query and click it, as a person would: the pair view is built in the
# click; then its images load (the thumbnails load lazily, when on screen).
OPEN_HIT = """
const done = arguments[arguments.length - 1];
const sections = document.querySelectorAll("section.query");
const row = sections[Math.floor(sections.length / 2)].querySelector("tr.hit");
row.scrollIntoView({block: "start"});
const started = performance.now();
row.click();
const built = performance.now() - started;
const pair = row.nextElementSibling.querySelector("div.pair");
let heatmap = null;
const wait = () => {
  const images = [...pair.querySelectorAll("img")];
  const heat = pair.querySelector("img.heatmap-image");
  if (heatmap === null && heat && heat.complete && heat.naturalWidth > 0) heatmap = performance.now() - started;
  if (heatmap === null || !images.every((i) => i.complete)) return setTimeout(wait, 2);
  done({built, heatmap, loaded: performance.now() - started, count: images.length});
};
wait();
"""
# Choose the second match of the compare page; wait until both players show its start and can draw it.
CHOOSE_MATCH = """
const done = arguments[arguments.length - 1];
const item = document.querySelectorAll(".match")[1];
const q = document.querySelector("video.player-query"), t = document.querySelector("video.player-target");
const qs = Number(item.dataset.start), ts = Number(item.dataset.targetStart);
const started = performance.now();
item.click();
const wait = () => {
  const elapsed = performance.now() - started;
  if (q.error || t.error || elapsed > 20000) return done({seek: NaN, error: String((q.error || t.error || {}).code)});
  const there = (v, s) => !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - s) < 0.5;
  if (there(q, qs) && there(t, ts)) return done({seek: elapsed});
  setTimeout(wait, 5);
};
wait();
"""


def browser_runs(page: Path, scripts: list[str], repeats: int) -> list[dict]:
    """`repeats` times, a fresh headless Chromium opens `page` (as first opened) and runs each of `scripts` (async)
    in turn: one dict a run, their results merged, with `errors`: how many JavaScript errors the console had."""
    sys.path.insert(0, str(ROOT / "tests"))
    from browser_support import start_chromium

    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as profile:
            driver = start_chromium(Path(profile))
            try:
                driver.set_script_timeout(60)
                driver.get(page.as_uri())
                run = {}
                for script in scripts:
                    run |= driver.execute_async_script(script)
                runs.append(run | {"errors": sum(e["level"] == "SEVERE" for e in driver.get_log("browser"))})
            finally:
                driver.quit()
    return runs


def browser(folder: Path, repeats: int) -> None:
    for name, action in (("compare", CHOOSE_MATCH), ("search", OPEN_HIT)):
        page = folder / "pages" / f"{name}.html"
        runs = browser_runs(page, [NAVIGATION, action], repeats)
        print(f"{name}.html ({page.stat().st_size / 1e6:.2f} MB; {runs[0]['sections']} query sections, "
              f"{runs[0]['hits']:,} hit rows, {runs[0]['shown']} images at load), median of {repeats} ({load()}):")
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "error"}
        print(f"  DOMContentLoaded (sections built) {median['dom']:.0f} ms, first paint {median['paint']:.0f} ms, "
              f"load event {median['load']:.0f} ms; JavaScript errors: {max(r['errors'] for r in runs)}")
        if name == "search":
            print(f"  open a pair view: built in {median['built']:.0f} ms, heatmap shown at "
                  f"{median['heatmap']:.0f} ms, all {runs[0]['count']} images at {median['loaded']:.0f} ms")
        else:
            print(f"  choose a match: both 2-hour players at its start after {median['seek']:.0f} ms"
                  + (f" (player error {runs[0]['error']})" if "error" in runs[0] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("make", "compare", "search", "browser", "all"))
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3, help="browser: page openings per page (median printed)")
    parser.add_argument("--threads", type=int, help="search: torch threads (default: torch's own choice)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        print(f"machine: {machine()}; {load()} at start", flush=True)
    if args.stage == "all":
        for stage in ("make", "compare", "search", "browser"):
            print(f"--- {stage}", flush=True)
            extra = ["--threads", str(args.threads)] if args.threads else []
            subprocess.run([sys.executable, __file__, stage, "--folder", str(args.folder), "--repeats",
                            str(args.repeats), "--child", *extra], check=True)
    elif args.stage == "make":
        make(args.folder)
    elif args.stage == "compare":
        compare(args.folder)
    elif args.stage == "search":
        search(args.folder, args.threads)
    else:
        browser(args.folder, args.repeats)


if __name__ == "__main__":
    main()
