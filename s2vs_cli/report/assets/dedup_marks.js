// Marks on the dedup page (dedup.js): per pair "copy" / "not a copy", per group member "keep this one", counted in
// a sticky bar that downloads them as decisions.json, the file `s2vs dedup --decisions` reads (the format of
// storage/decisions.py). The download holds the decisions the result was made with (doc.decisions, from its
// `decisions`) merged with the marks made here: a mark on a decided pair replaces its label, a decided pair's
// pressed mark clicked again removes it. The file is a Blob behind an <a download>: the page stays a file:// page,
// no server, no fetch. Every control is a <button>; ids reach the DOM as text only. Inlined before dedup.js.
"use strict";
(function (pages) {
  const SHOWN = { copy: "copy", not_copy: "not a copy" }; // label -> its button's text
  const EXTRAS = ["note", "at"]; // a decided pair's optional keys, kept as they were (`at` dropped once relabelled)
  const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

  function pairKey(a, b) {
    return JSON.stringify(a < b ? [a, b] : [b, a]); // unordered, and no separator an id could hold
  }

  pages.dedupMarks = function dedupMarks(doc, kit) {
    const given = doc.decisions || {};
    const givenVideos = given.videos || {};
    const sources = doc.sources || {};
    const pairs = new Map(); // key -> {a, b, label, note?, at?, given: the label carried over (or undefined)}
    for (const p of given.pairs || []) pairs.set(pairKey(p.a, p.b), { ...p, given: p.label });
    const keep = new Map(); // id -> true when carried over
    for (const id of given.keep || []) keep.set(id, true);
    const groupOf = new Map(); // member id -> the ids of its group (one keeper each)
    for (const group of doc.groups || []) {
      const ids = (group.members || []).map((m) => m.id);
      for (const id of ids) groupOf.set(id, ids);
    }
    const redraws = new Set();
    const redraw = (draw) => {
      redraws.add(draw);
      draw();
    };
    const changed = () => redraws.forEach((draw) => draw());

    // A button that does its own work only: a pair row opens on click, Enter and Space, and must not here.
    function button(cls, text, action) {
      const node = kit.el("button", { type: "button", class: cls, "aria-pressed": "false" }, text);
      node.addEventListener("click", (event) => {
        event.stopPropagation();
        action();
        changed();
      });
      node.addEventListener("keydown", (event) => event.stopPropagation());
      return node;
    }

    function markPair(a, b, label) {
      const key = pairKey(a, b);
      const entry = pairs.get(key);
      if (entry && entry.label === label) pairs.delete(key); // pressed again: undone
      else if (entry) {
        entry.label = label; // a decided pair relabelled keeps its place and note; its time no longer holds
        delete entry.at;
      } else pairs.set(key, { a, b, label });
    }

    // "copy" and "not a copy" for the pair a-b, with what is marked ("marked: copy", "decided: not a copy").
    function pairControls(a, b) {
      const key = pairKey(a, b);
      const state = kit.span("mark-state", "");
      const buttons = Object.keys(SHOWN).map((label) =>
        button(`mark mark-${label.replace("_", "-")}`, SHOWN[label], () => markPair(a, b, label)));
      const node = kit.span("pair-marks", buttons, state);
      node.addEventListener("click", (event) => event.stopPropagation()); // a miss between buttons opens nothing
      redraw(() => {
        const entry = pairs.get(key);
        const label = entry ? entry.label : "";
        node.dataset.mark = label;
        buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(Object.keys(SHOWN)[i] === label)));
        state.textContent = !entry ? "" : `${entry.given === label ? "decided" : "marked"}: ${SHOWN[label]}`;
      });
      return node;
    }

    // "keep this one" on a member card: the keeper of its group (marking another member moves the mark).
    function keepButton(id) {
      const node = button("mark mark-keep", "keep this one", () => {
        if (keep.has(id)) keep.delete(id);
        else {
          for (const other of groupOf.get(id) || []) if (other !== id) keep.delete(other);
          keep.set(id, false);
        }
      });
      redraw(() => {
        node.setAttribute("aria-pressed", String(keep.has(id)));
        node.textContent = !keep.has(id) ? "keep this one" : keep.get(id) ? "decided: keep" : "✓ keep this one";
      });
      return node;
    }

    // The file, in exactly the decisions format; `videos` names every id it names, with its source.
    function decisionsFile() {
      const videos = {};
      const name = (id) => {
        if (hasOwn(videos, id)) return;
        const source = hasOwn(sources, id) ? sources[id] : null;
        const before = hasOwn(givenVideos, id) ? givenVideos[id] : null;
        Object.defineProperty(videos, id, { value: { source: source ?? before ?? null }, enumerable: true });
      };
      const listed = [...pairs.values()].map((entry) => {
        const pair = { a: entry.a, b: entry.b, label: entry.label };
        for (const extra of EXTRAS) if (entry[extra] !== undefined && entry[extra] !== null) pair[extra] = entry[extra];
        name(pair.a);
        name(pair.b);
        return pair;
      });
      const kept = [...keep.keys()];
      kept.forEach(name);
      return { format: "s2vs-decisions", version: 1, videos, pairs: listed, keep: kept };
    }

    // Marks not yet downloaded are lost with the page: leaving it asks first (what dedup ran with is not new).
    let saved = null;
    const unsaved = () => saved !== null && JSON.stringify(decisionsFile()) !== saved;
    window.addEventListener("beforeunload", (event) => {
      if (!unsaved()) return;
      event.preventDefault();
      event.returnValue = ""; // older browsers ask only when it is set
    });

    function download() {
      const file = decisionsFile();
      saved = JSON.stringify(file);
      changed();
      const text = `${JSON.stringify(file, null, 2)}\n`;
      const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
      const link = kit.el("a", { href: url, download: "decisions.json", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000); // after the browser has read it
    }

    // The sticky bar: how many decisions the file will hold, and the download.
    function bar() {
      const counted = kit.span("marks-count", "");
      const carried = kit.span("marks-carried", "");
      const pending = kit.span("marks-unsaved", "");
      if (saved === null) saved = JSON.stringify(decisionsFile()); // the page as made: nothing to lose yet
      const save = kit.el("button", { type: "button", class: "marks-download" }, "download decisions.json");
      save.addEventListener("click", download);
      redraw(() => {
        const n = pairs.size + keep.size;
        counted.textContent = `${n} ${n === 1 ? "mark" : "marks"}`;
        const old = [...pairs.values()].filter((p) => p.given === p.label).length +
          [...keep.values()].filter(Boolean).length; // carried over, unchanged
        carried.textContent = old ? ` (${old} carried over from the decisions dedup ran with)` : "";
        pending.textContent = unsaved() ? " · not downloaded yet" : "";
      });
      return kit.el("div", { class: "marks-bar", role: "region", "aria-label": "marks" }, counted, carried, pending,
        " · ",
        save, kit.span("marks-help", " click a pressed mark again to undo it; rerun with " +
          "s2vs dedup … --decisions decisions.json"));
    }

    // The decisions the result was made with, each with its marks: undo one here (not_copy pairs have no row).
    function carriedSection() {
      const decided = given.pairs || [];
      const kept = given.keep || [];
      if (!decided.length && !kept.length) return null;
      const { el, span } = kit;
      return el("section", { class: "query carried", id: "decisions" },
        el("h2", { class: "query-title" }, span("query-label", "decisions this page was made with"),
          span("query-id", `${decided.length + kept.length} from the decisions file given to dedup`)),
        el("p", { class: "carried-help" }, "They are in the download unless undone: click a pressed mark to " +
          "remove it from the file, the other mark to change it. Pairs decided not a copy are listed only here."),
        el("ul", { class: "carried-list" },
          decided.map((p) => el("li", {}, span("name-query", p.a), span("vs", " ↔ "), span("name-target", p.b),
            " ", pairControls(p.a, p.b), p.note ? span("carried-note", ` — “${p.note}”`) : null)),
          kept.map((id) => el("li", {}, span("name-query", id), " ", keepButton(id)))));
    }

    return { pairControls, keepButton, bar, carriedSection, decisionsFile };
  };
})((window.s2vsPages = window.s2vsPages || {}));
