// The dedup page (document kind "dedup", report/dedup_review.py): a summary, each group of duplicates (its
// members' thumbnails and facts, the suggested keeper marked, its pairs), the videos in no group (groups of one in
// the result: nothing to keep), then the pairs that link groups (one contains the other, or they overlap). Groups
// are numbered #0, #1, ... as in the result's links, the terminal's table and groups.csv. A pair row opens into the review pages' pair view (review.js, handed
// in as `kit`): both videos side by side, waiting at the first match; a match seeks and plays both.
// Every pair (rows and pair views) and group member carries its marks (dedup_marks.js, in `kit.marks`).
// Inlined before review.js, which calls the builder registered here; data reaches the DOM as text only.
"use strict";
(function (pages) {
  const RELATIONS = ["duplicate", "contains", "overlap"];
  const SIDES = { query: "a", target: "b" }; // what the pair view's two sides are called on this page

  pages.dedup = function dedupPage(doc, shared) {
    const kit = { ...shared, marks: pages.dedupMarks(doc, shared) };
    const pairs = doc.pairs || [];
    const groups = doc.groups || [];
    const linked = linksByGroup(pairs, doc.links || []);
    const ref = (number) => groupLink(number, groups, kit);
    const main = kit.el("main", { class: "dedup" }, summary(doc, kit), kit.marks.bar(), kit.marks.carriedSection());
    for (const group of groups) if (!group.single) main.append(groupSection(doc, group, linked, ref, kit));
    const singles = groups.filter((group) => group.single);
    if (singles.length) main.append(singlesSection(singles, linked, ref, kit));
    main.append(linksSection(doc, ref, kit));
    return main;
  };

  function count(value) {
    return Number(value || 0).toLocaleString("en-US");
  }

  function plural(value, one, many) {
    return `${count(value)} ${value === 1 ? one : many}`;
  }

  // ---------------------------------------------------------------- summary
  function summary(doc, kit) {
    const { el } = kit;
    const c = doc.counts || {};
    return el("section", { class: "dedup-summary" },
      el("p", { class: "summary" },
        `${plural(c.groups, "group", "groups")} of duplicates holding ${plural(c.videos, "video", "videos")} ` +
        `(${count(c.removable)} removable) · ${plural(c.single, "video", "videos")} in no group · ` +
        `${plural(c.pairs, "pair", "pairs")}, ${plural(c.links, "link", "links")} between groups · ` +
        "click a pair to see both videos side by side"),
      el("ul", { class: "relation-counts" }, RELATIONS.map((r) => el("li", { class: `relation-count count-${r}` },
        relationBadge(r, kit), el("strong", {}, count(c[r])), r === "duplicate" ? " both videos ≥ 0.8 copied"
          : r === "contains" ? " one video ≥ 0.8 inside the other" : " a part of each"))),
      settingsTable(doc.settings || {}, kit));
  }

  function settingsTable(settings, kit) {
    const { el } = kit;
    const names = Object.keys(settings);
    if (!names.length) return null;
    const shown = (value) => (value !== null && typeof value === "object" ? JSON.stringify(value) : String(value));
    return el("details", { class: "settings" }, el("summary", {}, "settings"),
      el("table", { class: "metrics settings-table" }, el("tbody", {},
        names.map((name) => el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, shown(settings[name])))))));
  }

  // ---------------------------------------------------------------- groups
  // Group number -> [{group, relations}] of the groups its members' link pairs reach, and how (by number).
  function linksByGroup(pairs, links) {
    const found = new Map();
    const add = (from, to, relation) => {
      if (!found.has(from)) found.set(from, []);
      let link = found.get(from).find((l) => l.group === to);
      if (!link) found.get(from).push((link = { group: to, relations: [] }));
      if (!link.relations.includes(relation)) link.relations.push(relation);
    };
    for (const index of links) {
      const [a, b] = pairs[index].groups || [];
      if (a !== null && a !== undefined && b !== null && b !== undefined) {
        add(a, b, pairs[index].relation);
        add(b, a, pairs[index].relation);
      }
    }
    for (const reached of found.values()) reached.sort((x, y) => x.group - y.group);
    return found;
  }

  function linkedTo(group, linked, ref, kit) {
    const links = linked.get(group.number) || (group.links || []).map((n) => ({ group: n, relations: [] }));
    if (!links.length) return null;
    return kit.el("p", { class: "group-links" }, "linked to ", links.map((l, i) => [i ? ", " : "",
      ref(l.group), l.relations.length ? ` (${l.relations.join(", ")})` : ""]));
  }

  function groupSection(doc, group, linked, ref, kit) {
    const { el, span } = kit;
    const members = group.members || [];
    const title = el("h2", { class: "query-title group-title" },
      span("query-label", `group #${group.number}`),
      span("query-id", plural(members.length, "video", "videos")),
      group.keep ? span("group-keep", "suggested keeper ", el("strong", {}, group.keep)) : null);
    const section = el("section", { class: "query group", id: `group-${group.number}` }, title,
      linkedTo(group, linked, ref, kit), el("div", { class: "members" }, members.map((m) => memberCard(m, kit))));
    const own = (group.pairs || []).map((i) => doc.pairs[i]);
    if (own.length) section.append(pairsTable(doc, own, false, ref, kit));
    return section;
  }

  // Groups of one: a card each (its anchor the group's), linked to what it contains or overlaps; no keeper.
  function singlesSection(singles, linked, ref, kit) {
    const { el, span } = kit;
    return el("section", { class: "query singles", id: "singles" },
      el("h2", { class: "query-title" }, span("query-label", "in no group"),
        span("query-id", plural(singles.length, "video", "videos")),
        span("group-keep", "no duplicate: each only contains or overlaps others")),
      el("div", { class: "members" }, singles.map((group) => memberCard(group.members[0], kit,
        { number: group.number, links: linkedTo(group, linked, ref, kit) }))));
  }

  // A link to group `number`: "group #N", or a group of one by its video, "ID (#N)".
  function groupLink(number, groups, kit) {
    if (number === null || number === undefined) return kit.span("no-group", "–");
    const group = groups[number];
    const text = group && group.single && group.members.length ? `${group.members[0].id} (#${number})`
      : `group #${number}`;
    const link = kit.el("a", { href: `#group-${number}`, class: "group-ref" }, text);
    link.addEventListener("click", (event) => event.stopPropagation()); // follow the link, leave the row shut
    return link;
  }

  // `single`: {number, links} of a video in no group (the card is its group's anchor).
  function memberCard(member, kit, single) {
    const { el, span, badge, formatTime } = kit;
    const f = member.facts || {};
    const picture = member.thumb
      ? el("img", { class: "member-thumb", src: member.thumb, alt: `${member.id}, halfway through`, loading: "lazy" })
      : el("div", { class: "member-thumb member-missing" }, member.video ? "no thumbnail could be made"
        : member.source ? [span("missing-what", "source not found"), span("missing-path", member.source)]
          : "no source recorded");
    const facts = [
      ["duration", formatTime(f.duration)],
      ["resolution", f.width && f.height ? `${f.width}×${f.height}` : "–"],
      ["frame rate", Number.isFinite(f.fps) ? `${+f.fps.toFixed(2)} fps` : "–"],
      ["bitrate", bitrate(f.bitrate)],
      ["size", bytes(f.size)],
    ];
    const where = single ? { id: `group-${single.number}`, class: "member single" }
      : { class: member.keep ? "member keeper" : "member" };
    return el("figure", { ...where, "data-id": member.id }, picture,
      el("figcaption", {}, span("member-id", member.id), member.keep ? badge("keep", "keep")
        : single ? span("single-number", `#${single.number}`) : null),
      el("dl", { class: "facts" }, facts.map(([name, value]) => el("div", { class: "fact" },
        el("dt", {}, name), el("dd", {}, value)))),
      member.source ? el("p", { class: "member-source", title: member.source }, member.source) : null,
      single ? single.links : kit.marks.keepButton(member.id));
  }

  function bitrate(bits) {
    if (!Number.isFinite(bits) || bits <= 0) return "–";
    return bits >= 1e6 ? `${(bits / 1e6).toFixed(2)} Mb/s` : `${Math.round(bits / 1e3)} kb/s`;
  }

  function bytes(size) {
    if (!Number.isFinite(size) || size < 0) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let value = size;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${unit ? value.toFixed(value < 10 ? 2 : 1) : value} ${units[unit]}`;
  }

  // ---------------------------------------------------------------- pairs
  function linksSection(doc, ref, kit) {
    const { el, span } = kit;
    const links = (doc.links || []).map((i) => doc.pairs[i]);
    const section = el("section", { class: "query links", id: "links" },
      el("h2", { class: "query-title" }, span("query-label", "links between groups"),
        span("query-id", plural(links.length, "pair", "pairs"))));
    if (links.length) section.append(pairsTable(doc, links, true, ref, kit));
    else section.append(el("p", { class: "no-hits" }, "No video contains or overlaps one of another group."));
    return section;
  }

  function pairsTable(doc, pairs, withGroups, ref, kit) {
    const { span, similarityCell, verdictBadge } = kit;
    const columns = [];
    if (withGroups) {
      columns.push({ head: "groups", cls: "pair-groups", cell: (p) => [ref(p.groups[0]), span("vs", " ↔ "),
        ref(p.groups[1])] });
    }
    columns.push(
      { head: "pair", cls: "target",
        cell: (p) => [span("name-query", p.a), span("vs", " ↔ "), span("name-target", p.target)] },
      { head: "relation", cls: "relation", cell: (p) => relationCell(p, kit) },
      { head: "similarity", cls: "num similarity", cell: similarityCell },
      { head: "coverage", cls: "coverage", cell: (p) => coverageText(p) });
    if (pairs.some((p) => p.verdict)) columns.push({ head: "verdict", cls: "verdict", cell: verdictBadge });
    columns.push({ head: "matches", cls: "num count", cell: (p) => String((p.matches || []).length) },
      { head: "mark", cls: "marks", cell: (p) => kit.marks.pairControls(p.a, p.target) });
    return kit.pairTable(columns, pairs, (p) => pairView(doc, p, kit), false, "dedup-pairs");
  }

  function pairView(doc, pair, kit) {
    const { span } = kit;
    const a = { id: pair.a, video: pair.a_video, duration: pair.a_duration, source: pair.a_source };
    return kit.pairView(doc, a, pair, { labels: SIDES, heatmap: false, thumbs: false, cue: true,
      stats: [span("stat", relationCell(pair, kit)),
        span("stat", "coverage ", kit.el("strong", {}, coverageText(pair))),
        span("stat", kit.marks.pairControls(pair.a, pair.target))] });
  }

  function relationBadge(relation, kit) {
    return kit.badge(relation, RELATIONS.includes(relation) ? `rel-${relation}` : "negative");
  }

  function relationCell(pair, kit) {
    const other = pair.container === pair.a ? pair.target : pair.a;
    return [relationBadge(pair.relation, kit), pair.relation === "contains" && pair.container
      ? kit.span("container", ` ${pair.container} contains ${other}`) : null];
  }

  function coverageText(pair) {
    const c = pair.coverage || {};
    const share = (value) => (Number.isFinite(value) ? `${Math.round(100 * value)}%` : "–");
    return `a ${share(c.a)} · b ${share(c.b)}`;
  }
})((window.s2vsPages = window.s2vsPages || {}));
