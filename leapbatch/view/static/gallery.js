/* leapbatch gallery: the page of `leapbatch gallery OUT`, reading window.LEAPBATCH_GALLERY from data.js.

Design. The data (leapbatch/view/gallery_data.py is its schema) is indexed once per revision: each variable's
value -> the jobs that have it. Every view is a pure function of `S`, the view state, which lives in
location.hash (so a link, or a reload, restores it, from file:// too). Text from the data is only ever inserted as
text (textContent, append(string), setAttribute): a prompt is data, never markup; the page's CSP forbids inline
script anyway. Only rows near the viewport are in the DOM (grid rows, filter rows); thumbnails are lazy and
the original image is loaded only in full screen and compare. Every ~2 s a fresh data.js is loaded as a script; a
new `revision` re-indexes and re-renders, keeping the view.

An empty grid cell says why: the status and reason of the jobs it has, else `whyEmpty`, a port of
leapbatch/view/absence.py `why_empty` (the Python version is the reference: same steps, same words).
*/
"use strict";

(() => {
  const GLOBAL = "LEAPBATCH_GALLERY";
  const MAX_COMBINATIONS = 20000; // absence.MAX_COMBINATIONS
  const UNLISTED = "left out by exclude or sample"; // absence.UNLISTED
  // leapbatch.folder.results.REQUEST_NAMES: include-entry values of these names are numbers or booleans.
  const REQUEST_NAMES = new Set([
    "enhance_prompt", "height", "model", "negative_prompt", "number_of_images", "prompt", "prompt_strength",
    "restore_faces", "sampler", "seed", "steps", "upscale_by", "version", "webhook_url", "width",
  ]);
  const REFRESH_MS = 2000;
  const CELL = 168; // a grid cell's width and least height, px (gallery.css: .cell)
  const ROW_HEAD = 150; // the grid's row labels column, px
  const BLOCK_GAP = 16; // between X2 blocks, px
  const BAND = 34; // a Y2 band's height, px
  const PAD = 4; // a cell's padding and the gap between its thumbs, px
  const MAX_CELL_THUMBS = 16; // past this a cell says "+N more" (a link to the filter view of that cell)
  const TILE_W = 184; // a filter-view tile, px (gallery.css: .tile)
  const TILE_H = 232;
  const MARGIN = 400; // rows rendered beyond the viewport, px
  const NOT_SET = "(not set)";

  /* ---------- small helpers ---------- */

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = String(v);
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c); // strings: text nodes
    return e;
  }

  const fmt = (n) => n.toLocaleString("en-US");
  const plural = (n, word) => `${fmt(n)} ${word}${n === 1 ? "" : "s"}`;

  /* ---------- whyEmpty: leapbatch/view/absence.py, step for step ---------- */

  const valuesText = (asked) => [...asked].map(([n, l]) => `${n} = ${l}`).join(", ");

  function compatible(axis, asked) {
    const positions = [];
    axis.names.forEach((name, p) => {
      if (asked.has(name)) positions.push([p, asked.get(name)]);
    });
    const out = [];
    axis.values.forEach((labels, i) => {
      if (positions.every(([p, label]) => labels[p] === label)) out.push(i);
    });
    return out;
  }

  function excludedBy(rules, assign) {
    for (let number = 0; number < rules.excludes.length; number++) {
      const entry = rules.excludes[number];
      if (Object.entries(entry).every(([name, labels]) => assign.has(name) && labels.includes(assign.get(name)))) {
        return number;
      }
    }
    return null;
  }

  function assignOf(rules, picks) {
    const assign = new Map(Object.entries(rules.constants));
    rules.axes.forEach((axis, a) => {
      axis.names.forEach((n, p) => {
        const v = axis.values[picks[a]][p];
        if (v !== null) assign.set(n, v);
      });
    });
    return assign;
  }

  const entryText = (entry) =>
    Object.entries(entry).map(([name, labels]) => `${name}: ${labels.join(" | ")}`).join(", ");

  function outsideTheMatrix(d, rules, asked) {
    const axisOf = new Map();
    for (const axis of rules.axes) for (const name of axis.names) axisOf.set(name, axis); // the last one wins
    for (const [name, label] of asked) {
      if (Object.hasOwn(rules.constants, name) && rules.constants[name] === label) continue;
      const axis = axisOf.get(name);
      if (axis !== undefined && !axis.values.length) continue; // too long to list: the fallback speaks
      const position = axis !== undefined ? axis.names.indexOf(name) : -1;
      if (axis !== undefined && axis.values.some((labels) => labels[position] === label)) continue;
      const variable = d.variables.find((v) => v.name === name);
      if (variable !== undefined && variable.values.includes(label)) {
        const others = new Map([...asked].filter(([k]) => k !== name));
        return `only include entries set ${name} = ${label}` + (others.size ? `, and none with ${valuesText(others)}` : "");
      }
      return `no job has ${name} = ${label}`;
    }
    return null;
  }

  function dropped(rules, asked) {
    if (rules.axes.some((axis) => !axis.values.length)) return UNLISTED;
    const choices = rules.axes.map((axis) => compatible(axis, asked));
    if (choices.some((c) => !c.length)) return `no combination sets ${valuesText(asked)} together`;
    let total = 1;
    for (const c of choices) total *= c.length;
    if (total > MAX_COMBINATIONS) return UNLISTED;
    const numbers = new Set();
    const at = choices.map(() => 0);
    for (;;) {
      const number = excludedBy(rules, assignOf(rules, choices.map((c, a) => c[at[a]])));
      if (number === null) {
        numbers.clear();
        break; // one combination is kept: not step 4
      }
      numbers.add(number);
      let a = at.length - 1;
      while (a >= 0 && ++at[a] === choices[a].length) at[a--] = 0;
      if (a < 0) break;
    }
    if (numbers.size) {
      const sorted = [...numbers].sort((p, q) => p - q);
      if (sorted.length === 1) return `excluded by exclude entry ${sorted[0] + 1} (${entryText(rules.excludes[sorted[0]])})`;
      return "excluded by exclude entries " + sorted.map((n) => String(n + 1)).join(", ");
    }
    if (rules.sample !== null && rules.sample !== undefined) {
      return `sampled out: sample keeps ${fmt(rules.sample)} of ${fmt(rules.matrix_jobs)} combinations`;
    }
    return "a duplicate: its request equals another job's";
  }

  /** Return why no job of the data has every value `asked` (a Map name -> label) names. */
  function whyEmpty(d, asked) {
    const rules = d.rules;
    if (rules === null || rules === undefined) return `no job has ${valuesText(asked)}`;
    return outsideTheMatrix(d, rules, asked) || dropped(rules, asked);
  }

  /* ---------- the data, indexed once per revision ---------- */

  let D = null; // the document
  let X = null; // its index

  function buildIndex(d) {
    const jobs = d.jobs;
    const n = jobs.key.length;
    const nv = d.variables.length;
    const byValue = d.variables.map((v) => v.values.map(() => []));
    const unset = d.variables.map(() => []);
    const keyPos = new Map();
    const statusCount = d.statuses.map(() => 0);
    let images = 0;
    for (let j = 0; j < n; j++) {
      const vs = jobs.vars[j];
      for (let k = 0; k < nv; k++) {
        const i = vs[k];
        (i < 0 ? unset[k] : byValue[k][i]).push(j);
      }
      keyPos.set(jobs.key[j], j);
      images += jobs.images[j].length;
      statusCount[jobs.status[j]]++;
    }
    const varPos = new Map(d.variables.map((v, k) => [v.name, k]));
    const labelPos = d.variables.map((v) => new Map(v.values.map((label, i) => [label, i])));
    return { n, byValue, unset, keyPos, statusCount, images, varPos, labelPos, hay: null };
  }

  function haystack() {
    if (X.hay === null) {
      const j = D.jobs;
      X.hay = j.prompt.map((p, i) => (p + "\n" + (j.text[i] || "") + "\n" + j.key[i]).toLowerCase());
    }
    return X.hay;
  }

  const idOf = (j, p) => `${D.jobs.key[j]}:${D.jobs.images[j][p][0]}`;

  function resolve(id) {
    const cut = id.lastIndexOf(":");
    const j = X.keyPos.get(id.slice(0, cut));
    if (j === undefined) return null;
    const index = Number(id.slice(cut + 1));
    const p = D.jobs.images[j].findIndex((img) => img[0] === index);
    return p < 0 ? null : { j, p };
  }

  const thumbSrc = (img) => `thumbs/${img[2].slice(0, 32)}.webp`;
  const fullSrc = (img) => D.folder + img[1];
  const labelOf = (k, i) => (i < 0 ? NOT_SET : D.variables[k].values[i]);

  /** Return the job's variables as [name, label] pairs, in variable order (unset ones left out). */
  function variablesOf(j) {
    const out = [];
    D.jobs.vars[j].forEach((i, k) => {
      if (i >= 0) out.push([D.variables[k].name, D.variables[k].values[i]]);
    });
    return out;
  }

  /** Return the request as sent: {...bodies[body], prompt, negativePrompt, seed}. */
  function requestOf(j) {
    const jobs = D.jobs;
    const req = { ...D.bodies[jobs.body[j]], prompt: jobs.prompt[j] };
    if (jobs.negative[j] >= 0) req.negativePrompt = D.negatives[jobs.negative[j]];
    if (jobs.seed[j] !== null) req.seed = jobs.seed[j];
    return req;
  }

  /** Return the include entry that reruns the job: a JSON (so YAML flow) mapping of its variables and seed. */
  function includeEntry(j) {
    const parts = variablesOf(j).map(([name, label]) => {
      let value = label;
      if (REQUEST_NAMES.has(name)) {
        try {
          value = JSON.parse(label);
        } catch {
          value = label;
        }
      }
      return [name, value];
    });
    if (!parts.some(([name]) => name === "seed") && D.jobs.seed[j] !== null) parts.push(["seed", D.jobs.seed[j]]);
    return "{" + parts.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(", ") + "}";
  }

  /* ---------- the view state, in location.hash ---------- */

  const AXES = ["x", "y", "x2", "y2"];
  const S = { view: "grid", x: "", y: "", x2: "", y2: "", at: {}, f: {}, q: "", img: "", cmp: [], cm: "side", ca: 0 };
  let before = "grid"; // the view compare returns to

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    S.view = ["grid", "filter", "compare"].includes(p.get("v")) ? p.get("v") : "grid";
    for (const a of AXES) S[a] = p.get(a) || "";
    S.at = {};
    S.f = {};
    for (const [k, v] of p) {
      if (k.startsWith("t.")) S.at[k.slice(2)] = v;
      if (k.startsWith("f.")) (S.f[k.slice(2)] ||= []).push(v);
    }
    S.q = p.get("q") || "";
    S.img = p.get("img") || "";
    S.cmp = p.getAll("cmp").slice(0, 4);
    S.cm = p.get("cm") === "flick" ? "flick" : "side";
    S.ca = Math.max(0, Number(p.get("ca")) || 0);
    if (!AXES.some((a) => p.has(a))) defaultAxes();
  }

  function writeHash() {
    const p = new URLSearchParams();
    p.set("v", S.view);
    for (const a of AXES) if (S[a]) p.set(a, S[a]);
    for (const [k, v] of Object.entries(S.at)) p.set("t." + k, v);
    for (const [k, vs] of Object.entries(S.f)) for (const v of vs) p.append("f." + k, v);
    if (S.q) p.set("q", S.q);
    if (S.img) p.set("img", S.img);
    for (const c of S.cmp) p.append("cmp", c);
    if (S.cm !== "side") p.set("cm", S.cm);
    if (S.ca) p.set("ca", String(S.ca));
    const hash = "#" + p.toString();
    if (hash !== location.hash) history.replaceState(null, "", hash);
  }

  function defaultAxes() {
    const names = D.variables.filter((v) => v.axis !== null).map((v) => v.name);
    for (const v of D.variables) if (!names.includes(v.name)) names.push(v.name);
    S.x = names[0] || "";
    S.y = names[1] || "";
    S.x2 = "";
    S.y2 = "";
  }

  /** Drop what the data no longer has (a variable renamed, an image gone). */
  function settle() {
    for (const a of AXES) if (S[a] && !X.varPos.has(S[a])) S[a] = "";
    for (const k of Object.keys(S.at)) {
      const v = X.varPos.get(k);
      if (v === undefined || !X.labelPos[v].has(S.at[k]) || AXES.some((a) => S[a] === k)) delete S.at[k];
    }
    for (const k of Object.keys(S.f)) if (!X.varPos.has(k)) delete S.f[k];
    if (S.img && resolve(S.img) === null) S.img = "";
    S.cmp = S.cmp.filter((c) => resolve(c) !== null);
    if (S.ca >= S.cmp.length) S.ca = 0;
    if (S.view === "compare" && S.cmp.length < 2) S.view = before;
  }

  /* ---------- grid ---------- */

  function gridModel() {
    const nv = D.variables.length;
    const ax = AXES.map((a) => (S[a] ? X.varPos.get(S[a]) : -1));
    // The jobs the tabs allow: start from the shortest value list of the fixed variables.
    const fixed = [];
    for (let k = 0; k < nv; k++) {
      if (ax.includes(k)) continue;
      const name = D.variables[k].name;
      if (Object.hasOwn(S.at, name)) fixed.push([k, X.labelPos[k].get(S.at[name])]);
    }
    let pool = null;
    for (const [k, i] of fixed) if (pool === null || X.byValue[k][i].length < pool.length) pool = X.byValue[k][i];
    const jobs = D.jobs;
    const allowed = (j) => fixed.every(([k, i]) => jobs.vars[j][k] === i);
    // Each axis: its slots (value indices, then -1 for jobs without it, if any), and value -> slot.
    const candidates = [];
    if (pool === null) {
      for (let j = 0; j < X.n; j++) candidates.push(j);
    } else {
      for (const j of pool) if (allowed(j)) candidates.push(j);
    }
    const slots = ax.map((k) => {
      if (k < 0) return { values: [null], pos: null };
      const values = D.variables[k].values.map((_, i) => i);
      if (candidates.some((j) => jobs.vars[j][k] < 0)) values.push(-1);
      const pos = new Int32Array(D.variables[k].values.length + 1);
      values.forEach((v, s) => {
        pos[v + 1] = s;
      });
      return { values, pos };
    });
    const [sx, sy, sx2, sy2] = slots.map((s) => s.values.length);
    const cells = new Map();
    const [kx, ky, kx2, ky2] = ax;
    const [px, py, px2, py2] = slots.map((s) => s.pos);
    let images = 0;
    for (const j of candidates) {
      const vs = jobs.vars[j];
      const id =
        (((ky2 < 0 ? 0 : py2[vs[ky2] + 1]) * sx2 + (kx2 < 0 ? 0 : px2[vs[kx2] + 1])) * sy + (ky < 0 ? 0 : py[vs[ky] + 1])) * sx +
        (kx < 0 ? 0 : px[vs[kx] + 1]);
      let list = cells.get(id);
      if (list === undefined) cells.set(id, (list = []));
      list.push(j);
      images += jobs.images[j].length;
    }
    const cellId = (xs, ys, x2s, y2s) => ((y2s * sx2 + x2s) * sy + ys) * sx + xs;
    return { ax, slots, sx, sy, sx2, sy2, cells, cellId, fixed, count: candidates.length, images };
  }

  function imagesIn(list) {
    let n = 0;
    for (const j of list) n += D.jobs.images[j].length;
    return n;
  }

  function cellHeight(n) {
    if (n === 0) return CELL;
    const shown = Math.min(n, MAX_CELL_THUMBS);
    const per = shown === 1 ? 1 : shown <= 4 ? 2 : shown <= 9 ? 3 : shown <= 16 ? 4 : 6;
    const ts = Math.floor((CELL - 2 * PAD - 2 - PAD * (per - 1)) / per); // 2: the cell's border
    const rows = Math.ceil(shown / per);
    return Math.max(CELL, 2 * PAD + 2 + rows * ts + (rows - 1) * PAD + (n > shown ? 22 : 0));
  }

  function gridRows(m) {
    const rows = [];
    let top = 0;
    for (let y2s = 0; y2s < m.sy2; y2s++) {
      if (m.ax[3] >= 0) {
        rows.push({ band: true, y2s, top, h: BAND });
        top += BAND;
      }
      for (let ys = 0; ys < m.sy; ys++) {
        let h = CELL;
        for (let x2s = 0; x2s < m.sx2; x2s++) {
          for (let xs = 0; xs < m.sx; xs++) {
            const list = m.cells.get(m.cellId(xs, ys, x2s, y2s));
            if (list !== undefined) h = Math.max(h, cellHeight(imagesIn(list)));
          }
        }
        rows.push({ band: false, y2s, ys, top, h });
        top += h + PAD;
      }
    }
    return { rows, height: top };
  }

  /** Return the cell's asked values (a Map, in variable order) and the names it asks to be unset. */
  function askedOf(m, xs, ys, x2s, y2s) {
    const at = [xs, ys, x2s, y2s];
    const byVar = new Map();
    const unsetNames = [];
    m.ax.forEach((k, a) => {
      if (k < 0) return;
      const v = m.slots[a].values[at[a]];
      if (v < 0) unsetNames.push(D.variables[k].name);
      else byVar.set(k, D.variables[k].values[v]);
    });
    for (const [k, i] of m.fixed) byVar.set(k, D.variables[k].values[i]);
    const asked = new Map();
    [...byVar.keys()].sort((p, q) => p - q).forEach((k) => asked.set(D.variables[k].name, byVar.get(k)));
    return { asked, unsetNames };
  }

  const whyCache = new Map();

  function emptyWhy(m, xs, ys, x2s, y2s) {
    const { asked, unsetNames } = askedOf(m, xs, ys, x2s, y2s);
    if (unsetNames.length) return `no job leaves ${unsetNames.join(", ")} unset with ${valuesText(asked)}`;
    const key = JSON.stringify([...asked]);
    let why = whyCache.get(key);
    if (why === undefined) whyCache.set(key, (why = whyEmpty(D, asked)));
    return why;
  }

  function thumb(j, p, size) {
    const img = D.jobs.images[j][p];
    const id = idOf(j, p);
    const picked = S.cmp.includes(id);
    const image = el("img", {
      src: thumbSrc(img),
      loading: "lazy",
      decoding: "async",
      alt: D.jobs.prompt[j],
      width: size,
      height: size,
      draggable: "false",
    });
    image.addEventListener("error", () => image.classList.add("missing"), { once: true });
    return el(
      "div",
      { class: "thumb" + (picked ? " picked" : ""), "data-id": id },
      el("button", { type: "button", class: "open", "data-open": id, title: D.jobs.prompt[j] }, image),
      el("button", { type: "button", class: "pick", "data-pick": id, title: "pick for compare", "aria-pressed": picked ? "true" : "false" }, picked ? "✓" : "+"),
    );
  }

  function statusNote(list) {
    // The jobs of a cell that have no images: their status and reason, the same ones counted once.
    const seen = new Map();
    for (const j of list) {
      if (D.jobs.images[j].length) continue;
      const text = `${D.statuses[D.jobs.status[j]]}: ${D.jobs.reason[j] || "no images"}`;
      seen.set(text, (seen.get(text) || 0) + 1);
    }
    return [...seen].map(([text, n]) => (n > 1 ? `${n} jobs ${text}` : text));
  }

  function renderCell(m, xs, ys, x2s, y2s) {
    const list = m.cells.get(m.cellId(xs, ys, x2s, y2s)) || [];
    const n = imagesIn(list);
    const attrs = { class: "cell", "data-count": n, "data-jobs": list.length };
    const labels = [xs, ys, x2s, y2s];
    AXES.forEach((a, i) => {
      const k = m.ax[i];
      if (k >= 0) attrs["data-" + a] = labelOf(k, m.slots[i].values[labels[i]]);
    });
    const cell = el("div", attrs);
    cell.style.width = CELL + "px";
    if (n === 0) {
      cell.classList.add("empty");
      const notes = list.length ? statusNote(list) : [emptyWhy(m, xs, ys, x2s, y2s)];
      cell.classList.add(list.length ? "waiting" : "absent");
      cell.append(el("p", { class: "why", text: notes.join("; ") }));
      return cell;
    }
    const shown = Math.min(n, MAX_CELL_THUMBS);
    const per = shown === 1 ? 1 : shown <= 4 ? 2 : shown <= 9 ? 3 : shown <= 16 ? 4 : 6;
    const ts = Math.floor((CELL - 2 * PAD - 2 - PAD * (per - 1)) / per); // 2: the cell's border
    const wrap = el("div", { class: "thumbs" });
    let put = 0;
    for (const j of list) {
      for (let p = 0; p < D.jobs.images[j].length && put < shown; p++, put++) {
        const t = thumb(j, p, ts);
        t.style.width = ts + "px";
        t.style.height = ts + "px";
        wrap.append(t);
      }
    }
    cell.append(wrap);
    if (n > shown) {
      const { asked } = askedOf(m, xs, ys, x2s, y2s);
      cell.append(el("button", { type: "button", class: "more", onclick: () => toFilter(asked) }, `+${fmt(n - shown)} more`));
    }
    const waiting = statusNote(list);
    if (waiting.length) cell.title = waiting.join("; ");
    return cell;
  }

  function toFilter(asked) {
    S.view = "filter";
    S.f = {};
    for (const [k, v] of asked) S.f[k] = [v];
    render();
  }

  let grid = null; // {m, rows, height, body, range}

  function renderGrid(content) {
    const m = gridModel();
    const { rows, height } = gridRows(m);
    const blockW = m.sx * (CELL + PAD);
    const width = ROW_HEAD + m.sx2 * blockW + (m.sx2 - 1) * BLOCK_GAP;
    const head = el("div", { class: "colheads" });
    head.style.width = width + "px";
    const corner = el("div", { class: "corner" });
    corner.style.width = ROW_HEAD + "px";
    corner.append(el("span", { class: "axisname", text: (S.y || "—") + " ↓  " + (S.x || "—") + " →" }));
    head.append(corner);
    for (let x2s = 0; x2s < m.sx2; x2s++) {
      const block = el("div", { class: "blockhead" });
      block.style.width = blockW + "px";
      if (x2s) block.style.marginLeft = BLOCK_GAP + "px";
      if (m.ax[2] >= 0) {
        block.append(el("div", { class: "x2label", text: `${S.x2} = ${labelOf(m.ax[2], m.slots[2].values[x2s])}` }));
      }
      const labels = el("div", { class: "xlabels" });
      for (let xs = 0; xs < m.sx; xs++) {
        const text = m.ax[0] >= 0 ? labelOf(m.ax[0], m.slots[0].values[xs]) : "";
        const label = el("div", { class: "xlabel", title: text, text });
        label.style.width = CELL + "px";
        labels.append(label);
      }
      block.append(labels);
      head.append(block);
    }
    const body = el("div", { class: "gridbody" });
    body.style.height = height + "px";
    body.style.width = width + "px";
    content.append(el("p", { class: "summary", text: gridSummary(m) }), head, body);
    grid = { m, rows, height, body, range: null, blockW, width };
    paintGrid();
  }

  function gridSummary(m) {
    const imgs = m.images;
    const shape = [m.sx, m.sy, m.sx2, m.sy2].filter((n, a) => m.ax[a] >= 0).join(" × ") || "1";
    return `${shape} cells · ${plural(m.count, "job")} · ${plural(imgs, "image")}`;
  }

  function visibleRange(rows, topOf) {
    const main = $("main");
    const from = main.scrollTop - topOf - MARGIN;
    const to = main.scrollTop + main.clientHeight - topOf + MARGIN;
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid].top + rows[mid].h < from) lo = mid + 1;
      else hi = mid;
    }
    let end = lo;
    while (end < rows.length && rows[end].top < to) end++;
    return [lo, end];
  }

  function paintGrid() {
    if (grid === null || !grid.body.isConnected) return;
    const { m, rows, body } = grid;
    const [lo, hi] = visibleRange(rows, body.offsetTop);
    if (grid.range && grid.range[0] === lo && grid.range[1] === hi) return;
    grid.range = [lo, hi];
    const frag = document.createDocumentFragment();
    for (let r = lo; r < hi; r++) {
      const row = rows[r];
      let e;
      if (row.band) {
        e = el("div", { class: "band", text: `${S.y2} = ${labelOf(m.ax[3], m.slots[3].values[row.y2s])}` });
      } else {
        e = el("div", { class: "row" });
        const label = m.ax[1] >= 0 ? labelOf(m.ax[1], m.slots[1].values[row.ys]) : "";
        const headCell = el("div", { class: "rowhead", title: label, text: label });
        headCell.style.width = ROW_HEAD + "px";
        e.append(headCell);
        for (let x2s = 0; x2s < m.sx2; x2s++) {
          const block = el("div", { class: "block" });
          block.style.width = grid.blockW + "px";
          if (x2s) block.style.marginLeft = BLOCK_GAP + "px";
          for (let xs = 0; xs < m.sx; xs++) {
            const cell = renderCell(m, xs, row.ys, x2s, row.y2s);
            cell.style.height = row.h + "px";
            block.append(cell);
          }
          e.append(block);
        }
      }
      e.style.top = row.top + "px";
      e.style.height = row.h + "px";
      e.style.width = grid.width + "px";
      frag.append(e);
    }
    body.replaceChildren(frag);
  }

  /** Return the grid's images in reading order (Y2, Y, X2, X), for full-screen navigation. */
  function gridImages() {
    const m = grid ? grid.m : gridModel();
    const out = [];
    for (let y2s = 0; y2s < m.sy2; y2s++) {
      for (let ys = 0; ys < m.sy; ys++) {
        for (let x2s = 0; x2s < m.sx2; x2s++) {
          for (let xs = 0; xs < m.sx; xs++) {
            for (const j of m.cells.get(m.cellId(xs, ys, x2s, y2s)) || []) {
              for (let p = 0; p < D.jobs.images[j].length; p++) out.push(idOf(j, p));
            }
          }
        }
      }
    }
    return out;
  }

  /* ---------- filter ---------- */

  function filterModel() {
    const nv = D.variables.length;
    const words = S.q.toLowerCase().split(/\s+/).filter(Boolean);
    const hay = words.length ? haystack() : null;
    const want = D.variables.map((v, k) => {
      const labels = S.f[v.name];
      if (!labels || !labels.length) return null;
      return new Set(labels.map((l) => (l === NOT_SET ? -1 : X.labelPos[k].get(l))).filter((i) => i !== undefined));
    });
    const counts = D.variables.map((v) => new Int32Array(v.values.length + 1)); // [0]: not set
    const jobs = [];
    for (let j = 0; j < X.n; j++) {
      if (hay !== null && !words.every((w) => hay[j].includes(w))) continue;
      const vs = D.jobs.vars[j];
      let failing = -1;
      let fails = 0;
      for (let k = 0; k < nv; k++) {
        if (want[k] !== null && !want[k].has(vs[k])) {
          failing = k;
          if (++fails > 1) break;
        }
      }
      if (fails === 0) {
        jobs.push(j);
        for (let k = 0; k < nv; k++) counts[k][vs[k] + 1]++;
      } else if (fails === 1) {
        counts[failing][vs[failing] + 1]++;
      }
    }
    const itemJob = [];
    const itemImg = [];
    for (const j of jobs) {
      const n = D.jobs.images[j].length;
      if (n === 0) {
        itemJob.push(j);
        itemImg.push(-1);
      }
      for (let p = 0; p < n; p++) {
        itemJob.push(j);
        itemImg.push(p);
      }
    }
    return { jobs, counts, itemJob, itemImg };
  }

  let list = null; // {fm, cols, body, range}
  const openFacets = new Set(); // variables whose every value is shown
  const FACET_SHOWN = 40;

  function renderFacets(fm) {
    const box = $("facets");
    box.replaceChildren();
    D.variables.forEach((v, k) => {
      const chosen = new Set(S.f[v.name] || []);
      const ul = el("ul");
      let entries = v.values.map((label, i) => [label, fm.counts[k][i + 1]]);
      if (X.unset[k].length) entries.push([NOT_SET, fm.counts[k][0]]);
      const hidden = openFacets.has(v.name) ? 0 : entries.length - FACET_SHOWN;
      if (hidden > 0) entries = entries.filter(([label], i) => i < FACET_SHOWN || chosen.has(label));
      for (const [label, count] of entries) {
        const on = chosen.has(label);
        ul.append(
          el(
            "li",
            null,
            el(
              "button",
              { type: "button", class: "facet" + (on ? " on" : ""), "data-facet": v.name, "data-value": label, "aria-pressed": on ? "true" : "false", onclick: () => toggleFacet(v.name, label) },
              el("span", { class: "label", text: label }),
              el("span", { class: "count", text: fmt(count) }),
            ),
          ),
        );
      }
      if (hidden > 0) {
        const more = () => {
          openFacets.add(v.name);
          renderFacets(fm);
        };
        ul.append(el("li", null, el("button", { type: "button", class: "facet more-values", onclick: more }, `show all ${fmt(hidden + FACET_SHOWN)} values`)));
      }
      box.append(el("section", { class: "facetgroup" }, el("h2", { text: v.name }), ul));
    });
    if (Object.keys(S.f).length) {
      box.append(el("button", { type: "button", class: "clear", onclick: () => ((S.f = {}), render()) }, "clear filters"));
    }
  }

  function toggleFacet(name, label) {
    const now = new Set(S.f[name] || []);
    if (now.has(label)) now.delete(label);
    else now.add(label);
    if (now.size) S.f[name] = [...now];
    else delete S.f[name];
    renderFilterResults();
    writeHash();
  }

  function renderFilterResults() {
    const fm = filterModel();
    renderFacets(fm);
    const content = $("content");
    const main = $("main");
    const cols = Math.max(1, Math.floor((main.clientWidth - $("facets").offsetWidth - 24) / (TILE_W + 8)));
    const rows = Math.ceil(fm.itemJob.length / cols);
    const summary = el("p", { id: "result-count", class: "summary" }, `${plural(fm.jobs.length, "job")} · ${plural(fm.itemImg.filter((p) => p >= 0).length, "image")}`);
    const body = el("div", { class: "listbody" });
    body.style.height = rows * (TILE_H + 8) + "px";
    body.style.width = cols * (TILE_W + 8) + "px";
    content.replaceChildren(summary, body);
    list = { fm, cols, body, range: null, rows: Array.from({ length: rows }, (_, r) => ({ top: r * (TILE_H + 8), h: TILE_H })) };
    paintList();
  }

  function tile(j, p) {
    const caption = variablesOf(j).map(([, l]) => l).join(" · ");
    const attrs = { class: "tile" };
    if (p < 0) {
      return el(
        "div",
        { ...attrs, class: "tile waiting", "data-key": D.jobs.key[j] },
        el("p", { class: "why", text: `${D.statuses[D.jobs.status[j]]}: ${D.jobs.reason[j] || "no images"}` }),
        el("p", { class: "caption", text: caption || D.jobs.prompt[j] }),
      );
    }
    const t = thumb(j, p, TILE_W - 8);
    t.classList.add("big");
    return el("div", attrs, t, el("p", { class: "caption", title: D.jobs.prompt[j], text: caption || D.jobs.prompt[j] }));
  }

  function paintList() {
    if (list === null || !list.body.isConnected) return;
    const [lo, hi] = visibleRange(list.rows, list.body.offsetTop);
    if (list.range && list.range[0] === lo && list.range[1] === hi) return;
    list.range = [lo, hi];
    const frag = document.createDocumentFragment();
    const { itemJob, itemImg } = list.fm;
    for (let r = lo; r < hi; r++) {
      const row = el("div", { class: "listrow" });
      row.style.top = list.rows[r].top + "px";
      for (let i = r * list.cols; i < Math.min(itemJob.length, (r + 1) * list.cols); i++) row.append(tile(itemJob[i], itemImg[i]));
      frag.append(row);
    }
    list.body.replaceChildren(frag);
  }

  function filterImages() {
    const fm = list ? list.fm : filterModel();
    const out = [];
    fm.itemJob.forEach((j, i) => {
      if (fm.itemImg[i] >= 0) out.push(idOf(j, fm.itemImg[i]));
    });
    return out;
  }

  /* ---------- full screen ---------- */

  let order = []; // the current view's images, for ← and →

  function openViewer(id) {
    S.img = id;
    order = S.view === "filter" ? filterImages() : S.view === "compare" ? S.cmp.slice() : gridImages();
    paintViewer();
    writeHash();
  }

  function closeViewer() {
    S.img = "";
    $("viewer").hidden = true;
    $("full").removeAttribute("src");
    writeHash();
  }

  function step(by) {
    if (!order.length) return;
    const at = order.indexOf(S.img);
    S.img = order[(at + by + order.length) % order.length];
    paintViewer();
    writeHash();
  }

  function paintViewer() {
    const found = S.img ? resolve(S.img) : null;
    const viewer = $("viewer");
    if (found === null) {
      viewer.hidden = true;
      return;
    }
    const { j, p } = found;
    const img = D.jobs.images[j][p];
    const full = $("full");
    full.src = fullSrc(img);
    full.alt = D.jobs.prompt[j];
    full.width = img[3];
    full.height = img[4];
    const jobs = D.jobs;
    const at = order.indexOf(S.img);
    const dl = el("dl");
    const row = (term, value, id) => dl.append(el("dt", { text: term }), el("dd", id ? { id, text: value } : { text: value }));
    row("prompt", jobs.prompt[j], "info-prompt");
    if (jobs.text[j] !== null) row("caption", jobs.text[j], "info-caption");
    for (const [name, label] of variablesOf(j)) row(name, label);
    row("seed", jobs.seed[j] === null ? "—" : String(jobs.seed[j]), "info-seed");
    row("image", `${img[0]} · ${img[3]} × ${img[4]} · ${img[1]}`);
    row("sha256", img[2], "info-sha256");
    row("key", jobs.key[j], "info-key");
    row("inference", jobs.inference[j] || "—", "info-inference");
    row("model", D.models[jobs.model[j]], "info-model");
    const entry = includeEntry(j);
    const picked = S.cmp.includes(S.img);
    const info = $("info");
    info.replaceChildren(
      el(
        "div",
        { class: "infohead" },
        el("span", { class: "position", text: at >= 0 ? `${at + 1} / ${order.length}` : "" }),
        el("button", { type: "button", onclick: () => step(-1), title: "previous (←)" }, "←"),
        el("button", { type: "button", onclick: () => step(1), title: "next (→)" }, "→"),
        el("button", { type: "button", id: "viewer-pick", onclick: () => togglePick(S.img), title: "pick for compare (c)" }, picked ? "✓ picked" : "+ compare"),
        el("button", { type: "button", id: "viewer-close", onclick: closeViewer, title: "close (Esc)" }, "✕"),
      ),
      dl,
      el("h3", { text: "request as sent" }),
      el("pre", { id: "info-request", text: JSON.stringify(requestOf(j), null, 2) }),
      el("h3", { text: "include entry (reruns this job)" }),
      el("code", { id: "include-entry", text: entry }),
      el("button", { type: "button", id: "copy-entry", onclick: () => copyText(entry) }, "copy as include entry"),
      el("div", { id: "copy-result" }),
    );
    viewer.hidden = false;
  }

  function copyText(text) {
    const out = $("copy-result");
    const fallback = () => {
      const area = el("textarea", { id: "include-fallback", readonly: true, rows: 3 });
      area.value = text;
      out.replaceChildren(el("p", { text: "The clipboard is not available here: copy it from this box (Ctrl+C)." }), area);
      area.focus();
      area.select();
    };
    if (navigator.clipboard && window.isSecureContext) {
      let settled = false;
      const settle = (then) => () => {
        if (!settled) then();
        settled = true;
      };
      navigator.clipboard.writeText(text).then(settle(() => out.replaceChildren(el("p", { text: "copied" }))), settle(fallback));
      setTimeout(settle(fallback), 2000); // a permission prompt nobody answers
    } else {
      fallback();
    }
  }

  /* ---------- compare ---------- */

  function togglePick(id) {
    const at = S.cmp.indexOf(id);
    if (at >= 0) S.cmp.splice(at, 1);
    else if (S.cmp.length >= 4) {
      notice("compare holds at most 4 images: unpick one first");
      return;
    } else S.cmp.push(id);
    if (S.ca >= S.cmp.length) S.ca = 0;
    for (const t of document.querySelectorAll(".thumb")) {
      const on = S.cmp.includes(t.dataset.id);
      t.classList.toggle("picked", on);
      const b = t.querySelector(".pick");
      b.textContent = on ? "✓" : "+";
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
    if (S.img && !$("viewer").hidden) paintViewer();
    if (S.view === "compare") {
      if (S.cmp.length < 2) S.view = before;
      render();
    } else {
      paintHeader();
      writeHash();
    }
  }

  function renderCompare(content) {
    const bar = el(
      "div",
      { class: "comparebar" },
      el("button", { type: "button", class: S.cm === "side" ? "on" : "", "data-mode": "side", onclick: () => ((S.cm = "side"), render()) }, "side by side"),
      el("button", { type: "button", class: S.cm === "flick" ? "on" : "", "data-mode": "flick", onclick: () => ((S.cm = "flick"), render()) }, "flick (1–4, space)"),
      el("button", { type: "button", onclick: () => ((S.cmp = []), (S.view = before), render()) }, "clear"),
    );
    const shown = S.cm === "flick" ? [S.cmp[S.ca]] : S.cmp;
    const box = el("div", { id: "compare", class: "compare n" + shown.length + (S.cm === "flick" ? " flick" : "") });
    shown.forEach((id) => {
      const { j, p } = resolve(id);
      const img = D.jobs.images[j][p];
      const n = S.cmp.indexOf(id) + 1;
      const image = el("img", { src: fullSrc(img), alt: D.jobs.prompt[j], width: img[3], height: img[4], "data-id": id });
      box.append(
        el(
          "figure",
          { class: "compared" },
          el("button", { type: "button", class: "open", "data-open": id }, image),
          el("figcaption", null, el("b", { text: String(n) }), " ", variablesOf(j).map(([k, l]) => `${k}: ${l}`).join(" · ") + ` · seed ${D.jobs.seed[j]}`),
        ),
      );
    });
    content.append(bar, box);
  }

  /* ---------- the page ---------- */

  function notice(text) {
    const n = $("notice");
    n.textContent = text;
    n.hidden = !text;
  }

  function paintHeader() {
    $("name").textContent = D.name;
    document.title = `${D.name} · leapbatch gallery`;
    const parts = [plural(X.n, "job"), plural(X.images, "image")];
    D.statuses.forEach((s, i) => {
      if (X.statusCount[i]) parts.push(`${fmt(X.statusCount[i])} ${s}`);
    });
    $("counts").textContent = parts.join(" · ");
    for (const b of document.querySelectorAll("#views button")) b.classList.toggle("on", b.dataset.view === S.view);
    const cb = $("compare-button");
    cb.textContent = `Compare (${S.cmp.length})`;
    cb.disabled = S.cmp.length < 2;
  }

  function axisSelect(a, title) {
    const select = el("select", { id: "axis-" + a, "data-axis": a, "aria-label": title });
    select.append(el("option", { value: "", text: "—" }));
    for (const v of D.variables) select.append(el("option", { value: v.name, text: v.name }));
    select.value = S[a];
    select.addEventListener("change", () => setAxis(a, select.value));
    return el("label", { class: "axis" }, el("span", { text: title }), select);
  }

  function setAxis(a, name) {
    const old = S[a];
    for (const b of AXES) if (b !== a && name && S[b] === name) S[b] = old; // taken: the two swap
    S[a] = name;
    delete S.at[name];
    render();
  }

  function renderToolbar() {
    const bar = $("toolbar");
    bar.replaceChildren();
    if (S.view === "grid") {
      bar.append(axisSelect("x", "X"), axisSelect("y", "Y"));
      bar.append(el("button", { type: "button", id: "swap", title: "swap X and Y", onclick: () => (([S.x, S.y] = [S.y, S.x]), render()) }, "⇄"));
      bar.append(axisSelect("x2", "X2"), axisSelect("y2", "Y2"));
      const rest = D.variables.filter((v) => !AXES.some((a) => S[a] === v.name));
      if (rest.length) bar.append(el("span", { class: "sep" }));
      for (const v of rest) {
        const select = el("select", { "data-fix": v.name, "aria-label": v.name });
        select.append(el("option", { value: "", text: "all" }));
        for (const label of v.values) select.append(el("option", { value: label, text: label }));
        select.value = S.at[v.name] || "";
        select.addEventListener("change", () => {
          if (select.value) S.at[v.name] = select.value;
          else delete S.at[v.name];
          render();
        });
        bar.append(el("label", { class: "fix" }, el("span", { text: v.name }), select));
      }
    } else if (S.view === "filter") {
      const input = el("input", { id: "search", type: "search", placeholder: "search prompts and captions", "aria-label": "search", autocomplete: "off" });
      input.value = S.q;
      let timer = 0;
      input.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          S.q = input.value;
          renderFilterResults();
          writeHash();
        }, X.n > 20000 ? 150 : 0);
      });
      bar.append(input);
    }
  }

  function render() {
    settle();
    paintHeader();
    notice(D.known ? "" : `The folder's manifest is not known (${D.unknown_why}): empty cells cannot say which rule left them out.`);
    renderToolbar();
    const content = $("content");
    content.replaceChildren();
    grid = null;
    list = null;
    $("facets").hidden = S.view !== "filter";
    if (S.view === "grid") renderGrid(content);
    else if (S.view === "filter") renderFilterResults();
    else renderCompare(content);
    if (S.img) {
      order = S.view === "filter" ? filterImages() : S.view === "compare" ? S.cmp.slice() : gridImages();
    }
    paintViewer();
    writeHash();
  }

  function setView(view) {
    if (view === "compare" && S.cmp.length < 2) return;
    if (view === "compare" && S.view !== "compare") before = S.view;
    S.view = view;
    S.ca = 0;
    $("main").scrollTop = 0;
    render();
  }

  function onKey(e) {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const open = !$("viewer").hidden;
    if (open) {
      if (e.key === "ArrowRight") step(1);
      else if (e.key === "ArrowLeft") step(-1);
      else if (e.key === "Escape") closeViewer();
      else if (e.key === "c") togglePick(S.img);
      else return;
      e.preventDefault();
      return;
    }
    if (S.view === "compare") {
      if (/^[1-4]$/.test(e.key) && Number(e.key) <= S.cmp.length) {
        S.ca = Number(e.key) - 1;
        S.cm = "flick";
      } else if (e.key === " ") {
        S.cm = "flick";
        S.ca = (S.ca + 1) % S.cmp.length;
      } else if (e.key === "Escape") {
        S.view = before;
      } else return;
      e.preventDefault();
      render();
      return;
    }
    if (e.key === "g") setView("grid");
    else if (e.key === "f") setView("filter");
    else if (e.key === "m") setView("compare");
  }

  let frame = 0;
  function onScroll() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      paintGrid();
      paintList();
    });
  }

  /* ---------- live refresh ---------- */

  let tick = 0;
  function refresh() {
    const script = document.createElement("script");
    script.src = `data.js?r=${++tick}`;
    const done = () => {
      script.remove();
      const fresh = window[GLOBAL];
      if (fresh && fresh !== D && fresh.revision !== D.revision) load(fresh);
    };
    script.addEventListener("load", done);
    script.addEventListener("error", done);
    for (const old of document.querySelectorAll("script[data-refresh]")) old.remove();
    script.dataset.refresh = "";
    document.body.append(script);
  }

  function load(d) {
    const scroll = $("main").scrollTop;
    D = d;
    X = buildIndex(d);
    whyCache.clear();
    render();
    $("main").scrollTop = scroll;
    onScroll();
    document.documentElement.dataset.revision = d.revision;
  }

  function start() {
    performance.mark("gallery-start"); // data.js is parsed by now: the benchmark tells the two apart
    const d = window[GLOBAL];
    if (!d || d.format !== 1) {
      notice("No gallery data: data.js is missing or of another format. Run `leapbatch gallery OUT` to write it.");
      setInterval(() => {
        if (window[GLOBAL]) location.reload();
        else refresh();
      }, REFRESH_MS);
      D = { revision: "" };
      return;
    }
    D = d;
    X = buildIndex(d);
    readHash();
    render();
    document.documentElement.dataset.revision = d.revision;
    $("views").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-view]");
      if (b) setView(b.dataset.view);
    });
    document.addEventListener("click", (e) => {
      const pick = e.target.closest("[data-pick]");
      if (pick) return togglePick(pick.dataset.pick);
      const open = e.target.closest("[data-open]");
      if (open) openViewer(open.dataset.open);
    });
    $("viewer").addEventListener("click", (e) => {
      if (e.target === $("viewer") || e.target.classList.contains("stage")) closeViewer();
    });
    document.addEventListener("keydown", onKey);
    $("main").addEventListener("scroll", onScroll, { passive: true });
    window.addEventListener("resize", () => {
      if (S.view === "filter") renderFilterResults();
      else onScroll();
    });
    window.addEventListener("hashchange", () => {
      readHash();
      render();
    });
    setInterval(refresh, REFRESH_MS);
    document.documentElement.dataset.ready = "1";
    performance.mark("gallery-ready");
  }

  // For tests and the curious: the absence port and the include entry, by job key.
  window.leapbatchGallery = {
    whyEmpty: (asked) => whyEmpty(D, new Map(asked)),
    includeEntry: (key) => includeEntry(X.keyPos.get(key)),
  };

  start();
})();
