// The s2vs review page: builds the view from the JSON document embedded in the page.
// Data reaches the DOM only through textContent, setAttribute and style properties (never innerHTML), so
// no id, title or file name can become markup or code. Pair views are built when first opened.
// A kind with a page of its own (dedup.js) registers a builder in window.s2vsPages, inlined before this script;
// it is handed the pieces below (the kit), so the pair view and the tables are the same on every page.
"use strict";
(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MIN_RATE = 0.0625; // the playback rates every browser accepts
  const MAX_RATE = 16;
  const DRIFT = 0.25; // seconds the target may drift from the mapped time before it is moved back
  const EDGE = 0.05; // seconds of slack at the ends of a match when deciding which match a time is in

  // ---------------------------------------------------------------- small helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function appendAll(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) appendAll(node, child);
      else node.append(child instanceof Node ? child : String(child)); // a string becomes a text node
    }
  }

  function formatTime(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const sign = seconds < 0 ? "-" : "";
    let tenths = Math.round(Math.abs(seconds) * 10);
    const hours = Math.floor(tenths / 36000);
    tenths -= hours * 36000;
    const minutes = Math.floor(tenths / 600);
    tenths -= minutes * 600;
    const secs = (tenths / 10).toFixed(1).padStart(4, "0");
    return hours ? `${sign}${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${sign}${minutes}:${secs}`;
  }

  function formatNumber(value, digits) {
    return value === null || value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits ?? 3);
  }

  function span(cls, ...children) {
    return el("span", { class: cls }, ...children);
  }

  function badge(text, kind) {
    return span(`badge badge-${kind}`, text);
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function percent(value) {
    return `${clamp(value, 0, 100).toFixed(3)}%`;
  }

  // Activate on click and on Enter/Space, like a button.
  function onActivate(node, handler) {
    node.addEventListener("click", handler);
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        handler(event);
      }
    });
  }

  function playQuietly(video) {
    const started = video.play();
    if (started && typeof started.catch === "function") started.catch(() => {});
  }

  function seek(video, seconds) {
    const go = () => {
      video.currentTime = seconds;
    };
    if (video.readyState >= 1) go();
    else video.addEventListener("loadedmetadata", go, { once: true });
  }

  // ---------------------------------------------------------------- header
  function header(doc) {
    const kinds = { compare: "Compare", search: "Search", evaluate: "Evaluation", dedup: "Duplicates" };
    const meta = [
      doc.tool,
      doc.model ? `model ${doc.model}` : null,
      doc.extractor ? `extractor ${doc.extractor}` : null,
      doc.created ? `created ${doc.created}` : null,
    ].filter(Boolean);
    const head = el("header", { class: "page-head" },
      el("div", { class: "kind" }, `s2vs review · ${kinds[doc.kind] || doc.kind || "report"}`),
      el("h1", { class: "title" }, doc.title || "s2vs review"),
      meta.length ? el("p", { class: "meta" }, meta.join(" · ")) : null);
    if (doc.random_weights) {
      head.append(el("div", { class: "banner banner-random", role: "alert" },
        el("strong", {}, "Random weights. "),
        "This report was made with random, untrained weights: its similarities, matches and verdicts " +
        "are not meaningful."));
    }
    const notes = doc.notes || [];
    if (notes.length) head.append(el("ul", { class: "notes" }, notes.map((n) => el("li", { class: "note" }, n))));
    const metrics = doc.metrics || [];
    if (metrics.length) head.append(metricsTable(metrics));
    return head;
  }

  function metricsTable(metrics) {
    // The paper's columns only where the paper has numbers for this benchmark and model.
    const paper = metrics.some((m) => Number.isFinite(m.paper));
    const rows = metrics.map((m) => el("tr", {},
      el("th", { scope: "row" }, m.name),
      el("td", { class: "num" }, formatNumber(m.value)),
      paper ? el("td", { class: "num paper" }, formatNumber(m.paper)) : null,
      paper ? el("td", { class: "num diff" }, Number.isFinite(m.paper) && Number.isFinite(m.value)
        ? `${m.value - m.paper >= 0 ? "+" : "−"}${Math.abs(m.value - m.paper).toFixed(3)}` : "") : null));
    return el("table", { class: "metrics" },
      el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", { class: "num" }, "s2vs"),
        paper ? el("th", { class: "num" }, "paper") : null,
        paper ? el("th", { class: "num" }, "difference") : null)),
      el("tbody", {}, rows));
  }

  function contents(queries) {
    return el("nav", { class: "toc", "aria-label": "queries" },
      el("span", { class: "toc-label" }, "Queries"),
      queries.map((q, i) => el("a", { href: `#query-${i + 1}`, class: q.error ? "toc-error" : null },
        q.id, q.ap !== null && q.ap !== undefined ? span("toc-ap", ` ${formatNumber(q.ap, 2)}`) : null)));
  }

  // ---------------------------------------------------------------- a query and its hits
  function querySection(doc, query, index) {
    const hits = query.hits || [];
    const title = el("h2", { class: "query-title" },
      span("query-label", doc.kind === "compare" ? "query" : `query ${index + 1}`),
      span("query-id", query.id),
      query.ap !== null && query.ap !== undefined ? badge(`AP ${formatNumber(query.ap)}`, "ap") : null,
      Number.isFinite(query.duration) ? span("query-duration", formatTime(query.duration)) : null);
    const section = el("section", { class: "query", id: `query-${index + 1}` }, title);
    if (query.error) section.append(el("p", { class: "query-error" }, query.error));
    if (query.hits_note) section.append(el("p", { class: "hits-note" }, query.hits_note));
    if (hits.length) section.append(hitsTable(doc, query, hits));
    else if (!query.error) section.append(el("p", { class: "no-hits" }, "No hits."));
    return section;
  }

  function hitsTable(doc, query, hits) {
    const has = (key) => hits.some((h) => h[key] !== null && h[key] !== undefined);
    const columns = [
      { head: "#", cls: "num rank", cell: (h) => (h.rank ?? "") },
      { head: doc.kind === "evaluate" ? "video" : "target", cls: "target", cell: (h) => h.target },
      { head: "similarity", cls: "num similarity", cell: similarityCell },
    ];
    if (has("normalized")) columns.push({ head: "normalized", cls: "num", cell: (h) => formatNumber(h.normalized) });
    if (has("verdict")) columns.push({ head: "verdict", cls: "verdict", cell: verdictBadge });
    if (has("label") || has("flag")) columns.push({ head: "ground truth", cls: "truth", cell: truthCell });
    columns.push({ head: "matches", cls: "num count", cell: (h) => String((h.matches || []).length) });
    return pairTable(columns, hits, (hit) => pairView(doc, query, hit), doc.kind === "compare");
  }

  // A table of pairs, one row each; a row opens into its pair view (`makeView(item)`), built when first opened.
  function pairTable(columns, items, makeView, openAll, cls) {
    const body = el("tbody");
    const toggles = items.map((item) => {
      const row = el("tr", { class: "hit", tabindex: 0, "aria-expanded": "false" },
        columns.map((c) => el("td", { class: c.cls }, c.cell(item))));
      const cell = el("td", { colspan: columns.length });
      const pairRow = el("tr", { class: "pair-row", hidden: true }, cell);
      let view = null;
      const toggle = () => {
        if (!view) {
          view = makeView(item);
          cell.append(view.node);
        }
        const open = pairRow.hidden;
        pairRow.hidden = !open;
        row.classList.toggle("open", open);
        row.setAttribute("aria-expanded", String(open));
        if (!open) view.pause();
      };
      onActivate(row, toggle);
      body.append(row, pairRow);
      return toggle;
    });
    if (openAll) toggles.forEach((toggle) => toggle());
    return el("table", { class: cls ? `hits ${cls}` : "hits" },
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.cls }, c.head)))), body);
  }

  function similarityCell(hit) {
    const bar = span("simbar-fill");
    bar.style.width = percent(100 * (hit.similarity ?? 0));
    return [span("simbar", bar), span("simvalue", formatNumber(hit.similarity))];
  }

  function verdictBadge(hit) {
    if (!hit.verdict) return "";
    return badge(hit.verdict, hit.verdict === "copy" ? "copy" : "not-copy");
  }

  function truthCell(hit) {
    return [hit.label ? badge(hit.label, hit.label === "positive" ? "positive" : "negative") : null,
      hit.flag ? span("flag", hit.flag) : null];
  }

  // ---------------------------------------------------------------- the pair view
  function knownDuration(duration, matches, endKey) {
    if (Number.isFinite(duration) && duration > 0) return { seconds: duration, known: true };
    const end = Math.max(0, ...matches.map((m) => m[endKey]));
    return { seconds: end > 0 ? end * 1.05 : 1, known: false };
  }

  // The two videos of a pair side by side, in step at its matches. `options`: labels ({query, target}: what the
  // two sides are called; "query" and "target" by default), stats (more nodes for the summary line), heatmap
  // and thumbs (false: no frame map, no thumbnails in the match list), cue (true: both players wait at the
  // first match's start once opened).
  function pairView(doc, query, hit, options) {
    const opts = { labels: { query: "query", target: "target" }, heatmap: true, thumbs: true, cue: false,
      stats: [], ...options };
    const labels = opts.labels;
    const matches = hit.matches || [];
    const state = { matches, labels, thumbs: opts.thumbs, current: null, query: null, target: null, frame: 0,
      marks: [] };
    const summary = el("div", { class: "pair-summary" },
      span("pair-names", span("name-query", query.id), span("vs", " vs "), span("name-target", hit.target)),
      span("stat", "similarity ", el("strong", {}, formatNumber(hit.similarity))),
      Number.isFinite(hit.normalized) ? span("stat", "normalized ", el("strong", {}, formatNumber(hit.normalized))) : null,
      hit.verdict ? span("stat", verdictBadge(hit),
        Number.isFinite(hit.threshold) ? ` threshold ${formatNumber(hit.threshold)}` : "") : null,
      hit.label || hit.flag ? span("stat", truthCell(hit)) : null, opts.stats);

    const queryPlayer = player("query", labels.query, query.id, query.video, query.source);
    const targetPlayer = player("target", labels.target, hit.target, hit.target_video, hit.target_source);
    state.query = queryPlayer.video;
    state.target = targetPlayer.video;
    const keep = el("input", { type: "checkbox", class: "keep-in-step", checked: true });
    keep.checked = true;
    state.keep = keep;
    const status = span("sync-status", matches.length && (state.query || state.target)
      ? "Choose a match to play both videos from its start." : "");
    state.status = status;
    const playable = Boolean(state.query && state.target);
    const toolbar = el("div", { class: "sync-bar" },
      playable ? el("label", { class: "keep-label" }, keep, " keep in step") : null, status);

    const queryLength = knownDuration(query.duration, matches, "query_end");
    const targetLength = knownDuration(hit.target_duration, matches, "target_end");
    const timelines = el("div", { class: "timelines" },
      timeline(state, "query", queryLength, "query_start", "query_end"),
      timeline(state, "target", targetLength, "target_start", "target_end"));

    const body = opts.heatmap ? el("div", { class: "pair-body" }, matchList(state), heatmapFigure(state, hit.heatmap))
      : el("div", { class: "pair-body no-map" }, matchList(state));
    const node = el("div", { class: "pair" }, summary,
      el("div", { class: state.query || state.target ? "players" : "players no-video" }, queryPlayer.node,
        targetPlayer.node), toolbar, timelines, body);
    wirePlayers(state);
    if (opts.cue && matches.length) cue(state, 0);
    return {
      node,
      pause: () => [state.query, state.target].forEach((v) => v && v.pause()),
    };
  }

  function player(kind, label, name, url, source) {
    const caption = el("figcaption", {}, span("player-kind", label), span("player-name", name));
    if (!url) {
      return {
        node: el("figure", { class: `player player-box-${kind}` }, caption,
          el("div", { class: "placeholder" }, source ? `The ${label} video is not at hand: ${source} is not there.`
            : `The ${label} video is not at hand for this report.`)),
        video: null,
      };
    }
    const video = el("video", { class: `player-${kind}`, controls: true, preload: "metadata", muted: true,
      playsinline: true, src: url });
    video.muted = true; // the attribute only sets the default; both play at once, so sound stays off
    const node = el("figure", { class: `player player-box-${kind}` }, caption, video);
    video.addEventListener("error", () => {
      if (node.querySelector(".video-error")) return;
      node.append(el("p", { class: "video-error" },
        `The browser cannot play ${url}: the file is missing, moved, or in a format it does not decode.`));
    });
    return { node, video };
  }

  function timeline(state, kind, length, startKey, endKey) {
    const bar = el("div", { class: `timeline timeline-${kind}`, role: "group",
      "aria-label": `${state.labels[kind]} timeline` });
    state.matches.forEach((m, i) => {
      const width = (100 * (m[endKey] - m[startKey])) / length.seconds;
      const seg = el("div", { class: "seg", role: "button", tabindex: 0, "data-match": i,
        "data-start": m[startKey], title: `match ${i + 1}: ${formatTime(m[startKey])} – ${formatTime(m[endKey])}` },
        width > 2.5 ? String(i + 1) : "");
      seg.style.left = percent((100 * m[startKey]) / length.seconds);
      seg.style.width = percent(Math.max(width, 0.5)); // a very short match stays visible and clickable
      onActivate(seg, () => choose(state, i));
      state.marks.push(seg);
      bar.append(seg);
    });
    const cursor = span("cursor");
    cursor.hidden = true;
    bar.append(cursor);
    state[`${kind}Cursor`] = { node: cursor, seconds: length.seconds };
    return el("div", { class: "timeline-row" },
      span("timeline-label", state.labels[kind]),
      bar,
      span("timeline-end", length.known ? formatTime(length.seconds) : "length unknown"));
  }

  function thumbnail(url, alt) {
    return url ? el("img", { class: "thumb", src: url, alt, loading: "lazy" }) : span("thumb thumb-missing", "no image");
  }

  function matchList(state) {
    const { matches, labels } = state;
    if (!matches.length) {
      return el("div", { class: "match-list" }, el("p", { class: "no-matches" }, "No copied part located."));
    }
    const items = matches.map((m, i) => {
      const item = el("li", { class: "match", role: "button", tabindex: 0, "data-match": i,
        "data-start": m.query_start, "data-target-start": m.target_start },
        span("match-num", String(i + 1)),
        el("div", { class: "match-times" },
          el("div", {}, span("side", labels.query), ` ${formatTime(m.query_start)} – ${formatTime(m.query_end)}`),
          el("div", {}, span("side", labels.target), ` ${formatTime(m.target_start)} – ${formatTime(m.target_end)}`)),
        span("match-score", formatNumber(m.score)),
        state.thumbs ? el("div", { class: "match-thumbs" },
          thumbnail(m.query_thumb, `${labels.query} at ${formatTime(m.query_start)}`),
          thumbnail(m.target_thumb, `${labels.target} at ${formatTime(m.target_start)}`)) : null);
      onActivate(item, () => choose(state, i));
      state.marks.push(item);
      return item;
    });
    return el("div", { class: "match-list" },
      el("h3", {}, `${matches.length} ${matches.length === 1 ? "match" : "matches"}`),
      el("ol", { class: "matches" }, items));
  }

  function heatmapFigure(state, heatmap) {
    if (!heatmap || !heatmap.image) {
      return el("figure", { class: "heatmap heatmap-missing" },
        el("p", { class: "no-heatmap" }, "No frame-to-frame map for this pair."));
    }
    const [q0, q1] = heatmap.query_extent;
    const [t0, t1] = heatmap.target_extent;
    const qSpan = q1 - q0 || 1;
    const tSpan = t1 - t0 || 1;
    const frame = el("div", { class: "heatmap-frame" },
      el("img", { class: "heatmap-image", src: heatmap.image, alt: "frame-to-frame similarity map" }));
    // Width over height follows the two durations, within limits that keep both axes readable.
    frame.style.aspectRatio = String(clamp(tSpan / qSpan, 0.6, 2.2));
    const overlay = svg("svg", { class: "heatmap-overlay", width: "100%", height: "100%" });
    state.matches.forEach((m, i) => {
      const x = (100 * (m.target_start - t0)) / tSpan;
      const y = (100 * (m.query_start - q0)) / qSpan;
      const w = (100 * (m.target_end - m.target_start)) / tSpan;
      const h = (100 * (m.query_end - m.query_start)) / qSpan;
      const box = { x: percent(x), y: percent(y), width: percent(Math.max(w, 0.8)), height: percent(Math.max(h, 0.8)) };
      const outline = svg("g", { class: "outline", role: "button", tabindex: 0, "data-match": i,
        "data-start": m.query_start },
        svg("title", {}, `match ${i + 1}`),
        svg("rect", { ...box, class: "outline-halo" }),
        svg("rect", { ...box, class: "outline-line" }),
        svg("text", { class: "outline-num", x: percent(x + 0.8), y: percent(y), dy: "1.05em", dx: "2" }, String(i + 1)));
      onActivate(outline, () => choose(state, i));
      state.marks.push(outline);
      overlay.append(outline);
    });
    const playhead = svg("circle", { class: "playhead", r: 4, cx: "0", cy: "0", visibility: "hidden" });
    overlay.append(playhead);
    state.playhead = { node: playhead, q0, qSpan, t0, tSpan };
    frame.append(overlay);
    const [low, high] = heatmap.value_range || [null, null];
    return el("figure", { class: "heatmap" },
      el("div", { class: "heatmap-plot" },
        el("div", { class: "axis-y" }, span("axis-start", formatTime(q0)), span("axis-name", "query ↓"),
          span("axis-end", formatTime(q1))),
        frame),
      el("div", { class: "axis-x" }, span("axis-start", formatTime(t0)), span("axis-name", "target →"),
        span("axis-end", formatTime(t1))),
      el("div", { class: "legend" }, span("legend-low", formatNumber(low)), span("legend-bar"),
        span("legend-high", formatNumber(high)), span("legend-name", "similarity")));
  }

  // ---------------------------------------------------------------- playing a match, keeping in step
  function choose(state, index) {
    cue(state, index);
    if (state.query) playQuietly(state.query);
    if (state.target) playQuietly(state.target);
  }

  // Both players to the start of match `index`, at its speed ratio, without starting them.
  function cue(state, index) {
    const m = state.matches[index];
    setCurrent(state, index);
    if (state.query) seek(state.query, m.query_start);
    if (state.target) seek(state.target, m.target_start);
    applyRate(state, m);
  }

  function setCurrent(state, index) {
    if (state.current === index) return;
    state.current = index;
    for (const mark of state.marks) mark.classList.toggle("active", Number(mark.getAttribute("data-match")) === index);
    const m = state.matches[index];
    const { query, target } = state.labels;
    state.status.textContent = `Match ${index + 1} of ${state.matches.length}: ` +
      `${query} ${formatTime(m.query_start)}, ` +
      `${target} ${formatTime(m.target_start)}` + (state.query && state.target && state.keep.checked
      ? `, ${target} at ${rateOf(m).toFixed(2)}× the speed of ${query}` : "");
  }

  function rateOf(m) {
    const queryLength = m.query_end - m.query_start;
    const targetLength = m.target_end - m.target_start;
    return queryLength > 0 && targetLength > 0 ? targetLength / queryLength : 1;
  }

  function applyRate(state, m) {
    if (!state.target) return;
    const base = state.query ? state.query.playbackRate : 1;
    const rate = clamp((m && state.keep.checked ? rateOf(m) : 1) * base, MIN_RATE, MAX_RATE);
    if (Math.abs(state.target.playbackRate - rate) > 1e-3) state.target.playbackRate = rate;
  }

  function matchAt(state, seconds) {
    const inside = (m) => seconds >= m.query_start - EDGE && seconds <= m.query_end + EDGE;
    if (state.current !== null && inside(state.matches[state.current])) return state.current;
    const found = state.matches.findIndex(inside);
    return found >= 0 ? found : null;
  }

  // Move the target to where the current match maps the query's time (linear within the match).
  function followQuery(state, resume) {
    const { query, target } = state;
    if (!query || !target || !state.keep.checked) return;
    const index = matchAt(state, query.currentTime);
    if (index === null) {
      applyRate(state, null);
      return;
    }
    setCurrent(state, index);
    const m = state.matches[index];
    const mapped = m.target_start + (query.currentTime - m.query_start) * rateOf(m);
    applyRate(state, m);
    if (!target.seeking && Math.abs(target.currentTime - mapped) > DRIFT) target.currentTime = Math.max(0, mapped);
    if (resume && target.paused && !query.paused) playQuietly(target);
  }

  function tick(state) {
    state.frame = 0;
    if (!state.query || state.query.paused || state.query.ended) return;
    followQuery(state, true);
    state.frame = requestAnimationFrame(() => tick(state));
  }

  function moveCursor(cursor, seconds) {
    if (!cursor) return;
    cursor.node.hidden = false;
    cursor.node.style.left = percent((100 * seconds) / cursor.seconds);
  }

  function movePlayhead(state) {
    const p = state.playhead;
    if (!p || !state.query || !state.target) return;
    const x = (100 * (state.target.currentTime - p.t0)) / p.tSpan;
    const y = (100 * (state.query.currentTime - p.q0)) / p.qSpan;
    const visible = x >= 0 && x <= 100 && y >= 0 && y <= 100;
    p.node.setAttribute("visibility", visible ? "visible" : "hidden");
    if (visible) {
      p.node.setAttribute("cx", percent(x));
      p.node.setAttribute("cy", percent(y));
    }
  }

  function wirePlayers(state) {
    const { query, target } = state;
    if (query) {
      query.addEventListener("timeupdate", () => {
        moveCursor(state.queryCursor, query.currentTime);
        movePlayhead(state);
      });
      query.addEventListener("play", () => {
        if (target && state.keep.checked && target.paused) playQuietly(target);
        if (!state.frame) state.frame = requestAnimationFrame(() => tick(state));
      });
      query.addEventListener("pause", () => {
        if (target && state.keep.checked && !target.paused) target.pause();
      });
      query.addEventListener("seeked", () => followQuery(state, false));
      query.addEventListener("ratechange", () => applyRate(state, state.current === null ? null : state.matches[state.current]));
    }
    if (target) {
      target.addEventListener("timeupdate", () => {
        moveCursor(state.targetCursor, target.currentTime);
        movePlayhead(state);
      });
    }
    state.keep.addEventListener("change", () => {
      applyRate(state, state.current === null ? null : state.matches[state.current]);
      if (state.keep.checked) followQuery(state, true);
    });
  }

  // ---------------------------------------------------------------- the page
  const kit = { el, span, badge, percent, formatTime, formatNumber, onActivate, similarityCell, verdictBadge,
    pairTable, pairView };

  function build() {
    const app = document.getElementById("app");
    const doc = JSON.parse(document.getElementById("review-data").textContent);
    document.title = doc.title ? `${doc.title} · s2vs review` : "s2vs review";
    const ownPage = (window.s2vsPages || {})[doc.kind];
    if (ownPage) {
      app.append(header(doc), ownPage(doc, kit));
      return;
    }
    const queries = doc.queries || [];
    const hitCount = queries.reduce((n, q) => n + (q.hits || []).length, 0);
    const main = el("main", { class: "queries" });
    if (doc.kind !== "compare") {
      main.append(el("p", { class: "summary" },
        `${queries.length} ${queries.length === 1 ? "query" : "queries"} · ${hitCount} ` +
        `${doc.kind === "evaluate" ? "pairs to review" : hitCount === 1 ? "hit" : "hits"} · ` +
        "click a row to open its pair view"));
      if (queries.length > 1) main.append(contents(queries));
    }
    queries.forEach((q, i) => main.append(querySection(doc, q, i)));
    app.append(header(doc), main);
  }

  build();
})();
