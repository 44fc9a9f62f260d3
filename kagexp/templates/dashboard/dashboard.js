// kagexp dashboard: plain JavaScript, no library, no network. Every value from the data is
// shown with textContent (never parsed as HTML), so a note or an override is always text.
"use strict";

const DATA = JSON.parse(document.getElementById("data").textContent);
const PAGE_SIZE = 100;
const MAX_HISTORY_RUNS = 20;
const MAX_LABELLED = 30;
const SVG_POINTS_MAX = 1500; // more points are drawn on a canvas over the SVG axes: SVG slows down past a few thousand
const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#9333ea"];
const SVG_NS = (() => { const d = document.createElement("div"); d.innerHTML = "<svg></svg>"; return d.firstChild.namespaceURI; })();

const state = { sort: null, desc: false, text: "", status: "", exp: "", page: 0, selected: null, shown: [], columns: [], tab: "runs" };

// --- small helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function isNum(v) { return typeof v === "number" && isFinite(v); }

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function time(epoch) {
  if (!isNum(epoch)) return null;
  const d = new Date(epoch * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function plural(n, noun) { return `${n} ${noun}${n === 1 ? "" : "s"}`; }

function fmtDelta(v) { return isNum(v) ? (v >= 0 ? "+" : "") + fmt(v) : ""; }

function better(delta) {
  if (!isNum(delta) || delta === 0) return "";
  return (delta > 0) === (DATA.direction !== "min") ? "good" : "bad";
}

function bytes(n) {
  if (n < 1024) return n + " B";
  const units = ["KB", "MB", "GB", "TB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(1) + " " + units[i];
}

function kvTable(rows) {
  const body = el("tbody");
  for (const [k, v] of rows) body.append(el("tr", {}, el("td", {}, k), el("td", {}, fmt(v))));
  return el("table", { class: "kv" }, body);
}

// --- the runs -----------------------------------------------------------------------------

const EXPS = DATA.exps;
const KEYS = DATA.keys;
const METRICS = DATA.metrics;
const RUNS = Array.from({ length: DATA.count }, (_, index) => {
  const raw = {};
  // a column is a list, or {position: value} when mostly empty
  for (const [column, values] of Object.entries(DATA.runs)) raw[column] = values[index] ?? null;
  return { raw, index, id: EXPS[raw.e].name + "/" + raw.r, exp: EXPS[raw.e] };
});
const METRIC_INDEX = DATA.metric === null ? -1 : METRICS.indexOf(DATA.metric);

function metricOf(run, m) { const v = run.raw.m[m]; return v === undefined ? null : v; }
function projectMetric(run) { return METRIC_INDEX < 0 ? null : metricOf(run, METRIC_INDEX); }

function configValue(run, k) {
  const own = run.raw.c[k];
  if (own !== undefined) return own;
  if (run.raw.x && run.raw.x.includes(Number(k))) return null;
  const base = run.exp.base[KEYS[k]];
  return base === undefined ? null : base;
}

function buildColumns() {
  const cols = [
    { id: "run", label: "run", get: (r) => r.id, on: true },
    { id: "status", label: "status", get: (r) => r.raw.s, on: true },
  ];
  if (METRIC_INDEX >= 0) cols.push({ id: "m" + METRIC_INDEX, label: DATA.metric, get: (r) => projectMetric(r), on: true });
  cols.push({ id: "lb", label: "LB", get: (r) => r.raw.lb, on: RUNS.some((r) => r.raw.lb !== null) });
  DATA.varying.forEach((k, i) => cols.push({ id: "k" + k, label: KEYS[k], get: (r) => configValue(r, k), on: i < 12 }));
  METRICS.forEach((name, m) => {
    if (m !== METRIC_INDEX) cols.push({ id: "m" + m, label: name, get: (r) => metricOf(r, m), on: true });
  });
  cols.push({ id: "duration", label: "duration s", get: (r) => (isNum(r.raw.v.d) ? r.raw.v.d : null), on: true });
  cols.push({ id: "started", label: "started", get: (r) => time(r.raw.v.t), on: false });
  cols.push({ id: "note", label: "note", get: (r) => r.exp.note, on: false });
  return cols;
}

function compare(a, b) {
  const na = a === null || a === undefined, nb = b === null || b === undefined;
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return fmt(a).localeCompare(fmt(b), undefined, { numeric: true });
}

function searchText(run) {
  if (run.search === undefined) {
    const parts = [run.id, run.raw.s, run.raw.o || "", run.exp.note || ""];
    for (const col of state.columns) parts.push(fmt(col.get(run)));
    run.search = parts.join("\n").toLowerCase();
  }
  return run.search;
}

function filtered() {
  const text = state.text.toLowerCase();
  let runs = RUNS.filter((r) => (!state.status || r.raw.s === state.status) && (!state.exp || r.exp.name === state.exp));
  if (text) runs = runs.filter((r) => searchText(r).includes(text));
  if (state.sort) {
    const col = state.columns.find((c) => c.id === state.sort);
    const keyed = runs.map((r) => [col.get(r), r]);
    keyed.sort((a, b) => {
      const none = (a[0] === null || a[0] === undefined) - (b[0] === null || b[0] === undefined);
      if (none) return none; // runs without a value stay last either way
      const c = compare(a[0], b[0]);
      return (state.desc ? -c : c) || a[1].index - b[1].index;
    });
    runs = keyed.map((p) => p[1]);
  }
  return runs;
}

function renderHead() {
  const row = el("tr");
  for (const col of state.columns.filter((c) => c.on)) {
    const cls = state.sort === col.id ? "sorted" + (state.desc ? " desc" : "") : "";
    row.append(el("th", { class: cls, "data-col": col.id, title: "sort by " + col.label, onclick: () => sortBy(col.id) }, col.label));
  }
  const head = document.querySelector("#runs thead");
  head.replaceChildren(row);
}

// A column is sorted ascending on its first click, but the metric and LB best first.
function sortBy(id) {
  if (state.sort === id) state.desc = !state.desc;
  else { state.sort = id; state.desc = (id === "lb" || id === "m" + METRIC_INDEX) && DATA.direction === "max"; }
  state.page = 0;
  refresh();
}

function renderBody() {
  const visible = state.columns.filter((c) => c.on);
  const start = state.page * PAGE_SIZE;
  const rows = document.createDocumentFragment();
  for (const run of state.shown.slice(start, start + PAGE_SIZE)) {
    const tr = el("tr", { "data-run": run.id, onclick: () => showDetail(run) });
    if (state.selected === run) tr.className = "selected";
    for (const col of visible) {
      const v = col.get(run);
      const td = el("td", { class: typeof v === "number" ? "num" : "" }, fmt(v));
      if (col.id === "status") td.className = "status-" + v;
      if (col.id === "run" && run.raw.g) td.title = "its entry is no longer in RUNS";
      tr.append(td);
    }
    rows.append(tr);
  }
  document.querySelector("#runs tbody").replaceChildren(rows);
  const total = state.shown.length;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  document.getElementById("count").textContent = total + " of " + RUNS.length + " runs";
  document.getElementById("page").textContent = total ? `${start + 1}–${Math.min(total, start + PAGE_SIZE)} of ${total} (page ${state.page + 1} of ${pages})` : "no runs match";
  document.getElementById("prev").disabled = state.page === 0;
  document.getElementById("next").disabled = state.page >= pages - 1;
}

function refresh() {
  state.shown = filtered();
  const pages = Math.max(1, Math.ceil(state.shown.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  renderHead();
  renderBody();
  if (state.tab === "plots") renderPlots();
}

function setupControls() {
  const statuses = [...new Set(RUNS.map((r) => r.raw.s))].sort();
  const statusSelect = document.getElementById("status");
  for (const s of statuses) statusSelect.append(el("option", { value: s }, s));
  const expSelect = document.getElementById("exp");
  for (const e of EXPS) expSelect.append(el("option", { value: e.name }, e.name));
  let timer = null;
  document.getElementById("filter").addEventListener("input", (ev) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.text = ev.target.value; state.page = 0; refresh(); }, 120);
  });
  statusSelect.addEventListener("change", (ev) => { state.status = ev.target.value; state.page = 0; refresh(); });
  expSelect.addEventListener("change", (ev) => { state.exp = ev.target.value; state.page = 0; refresh(); });
  document.getElementById("prev").addEventListener("click", () => { state.page--; renderBody(); });
  document.getElementById("next").addEventListener("click", () => { state.page++; renderBody(); });
  const chooser = document.getElementById("columns");
  for (const col of state.columns) {
    const box = el("input", { type: "checkbox", "data-col": col.id });
    box.checked = col.on;
    box.addEventListener("change", () => { col.on = box.checked; renderHead(); renderBody(); });
    chooser.append(el("label", {}, box, " " + col.label));
  }
}

// --- a run's detail -----------------------------------------------------------------------

function showDetail(run) {
  state.selected = run;
  const box = document.getElementById("detail");
  box.hidden = false;
  const raw = run.raw;
  const head = el("h2", {}, run.id + " ", el("span", { class: "status-" + raw.s }, raw.s));
  if (raw.g) head.append(el("span", { class: "muted" }, " (not in RUNS)"));
  const close = el("button", { type: "button", class: "close", title: "close (Esc)", onclick: closeDetail }, "close ✕");
  box.replaceChildren(head, close, el("div", { class: "grid" }, detailLeft(run), detailRight(run)));
  box.scrollTop = 0;
  renderBody();
}

function closeDetail() {
  document.getElementById("detail").hidden = true;
  state.selected = null;
  renderBody();
}

// A blend's members with their weights and out-of-fold scores (from its meta.json), each a link
// to the member's detail; the rest of its recipe as key and value.
function blendRecipe(run, rows) {
  const blend = (DATA.envs[run.raw.p] || {}).blend;
  const recipe = [el("h3", {}, "The blend's recipe")];
  if (!blend || !Array.isArray(blend.members)) return [...recipe, kvTable(rows.map(([k, , v]) => [k, v]))];
  recipe.push(kvTable(rows.filter(([k]) => k !== "members").map(([k, , v]) => [k, v])));
  const body = el("tbody");
  blend.members.forEach((id, i) => {
    const member = RUNS.find((r) => r.id === id);
    const name = member ? el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showDetail(member); } }, id) : id;
    const weight = Array.isArray(blend.weights) ? blend.weights[i] : null;
    const score = blend.member_cv ? blend.member_cv[id] : null;
    body.append(el("tr", {}, el("td", {}, name), el("td", { class: "num" }, fmt(weight)), el("td", { class: "num" }, fmt(score))));
  });
  const head = el("tr", {}, el("th", {}, "member"), el("th", {}, "weight"), el("th", {}, "out-of-fold " + (blend.metric || "")));
  return [...recipe, el("table", { class: "kv blend-members" }, el("thead", {}, head), body)];
}

function configDifference(run, rows) {
  const shown = [
    el("h3", {}, "Override"), el("pre", { class: "override" }, run.raw.o || "(the base config)"),
    el("h3", {}, "Config: difference from " + run.exp.name + "/config.yml"),
  ];
  if (!rows.length) return [...shown, el("p", { class: "muted" }, "same as the base config")];
  const body = el("tbody");
  for (const [k, base, v] of rows) body.append(el("tr", {}, el("td", {}, k), el("td", { class: "muted" }, base === undefined ? "(absent)" : fmt(base)), el("td", {}, fmt(v))));
  return [...shown, el("table", { class: "config-diff" }, el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "base"), el("th", {}, "this run"))), body)];
}

function detailLeft(run) {
  const raw = run.raw;
  const part = el("div");
  const rows = Object.entries(raw.c).map(([k, v]) => [KEYS[k], run.exp.base[KEYS[k]], v]);
  for (const k of raw.x || []) rows.push([KEYS[k], run.exp.base[KEYS[k]], "(absent)"]);
  if (run.exp.blend) part.append(...blendRecipe(run, rows));
  else part.append(...configDifference(run, rows));
  part.append(el("h3", {}, "Metrics"));
  const metrics = METRICS.map((name, m) => [name, metricOf(run, m)]).filter((p) => p[1] !== null);
  if (raw.lb !== null) metrics.push(["LB", raw.lb]);
  part.append(metrics.length ? kvTable(metrics) : el("p", { class: "muted" }, "no metrics logged"));
  if (raw.fo) part.append(el("h3", {}, "Per-fold scores"), foldTable(raw.fo));
  if (raw.h) {
    part.append(el("h3", {}, "Histories"));
    for (const [m, series] of Object.entries(raw.h)) {
      part.append(plot({ title: METRICS[m], xlabel: "step", ylabel: METRICS[m], width: 420, height: 220, series: [{ label: run.id, points: historyPoints(series) }] }));
    }
  }
  return part;
}

function foldPairs(series) {
  const [values, folds] = series;
  return values.map((v, i) => [folds ? folds[i] : i, v]);
}

function foldTable(compact) {
  const folds = Object.fromEntries(Object.entries(compact).map(([m, series]) => [m, foldPairs(series)]));
  const names = Object.keys(folds);
  const ids = [...new Set(names.flatMap((m) => folds[m].map((p) => fmt(p[0]))))];
  const head = el("tr", {}, el("th", {}, "fold"), ...names.map((m) => el("th", {}, METRICS[m])));
  const body = el("tbody");
  for (const id of ids) {
    body.append(el("tr", {}, el("td", {}, id), ...names.map((m) => {
      const hit = folds[m].find((p) => fmt(p[0]) === id);
      return el("td", { class: "num" }, hit ? fmt(hit[1]) : "");
    })));
  }
  for (const [label, stat] of [["mean", mean], ["std", std]]) {
    body.append(el("tr", { class: "muted" }, el("td", {}, label), ...names.map((m) => el("td", { class: "num" }, fmt(stat(folds[m].map((p) => p[1])))))));
  }
  return el("table", { class: "folds" }, el("thead", {}, head), body);
}

function mean(xs) { return xs.reduce((a, b) => a + b, 0) / xs.length; }
function std(xs) { const m = mean(xs); return Math.sqrt(mean(xs.map((x) => (x - m) ** 2))); }

function detailRight(run) {
  const raw = run.raw;
  const own = raw.v || {};
  const env = DATA.envs[raw.p] || {};
  const git = env.git && typeof env.git === "object" ? env.git : null;
  const part = el("div");
  part.append(el("h3", {}, "Provenance"));
  const rows = [
    ["started", time(own.t)], ["duration s", own.d], ["attempt", own.a || 1], ["seed", env.seed], ["error", own.error],
    ["command", Array.isArray(env.command) ? env.command.join(" ") : env.command], ["pid", env.pid],
    ["git", git ? `${git.commit || "no commit"} on ${git.branch || "detached"}${git.dirty ? ", dirty" : ", clean"}` : env.git === undefined ? null : "not a repository"],
    ["code hash", env.code_hash], ["host", env.host], ["user", env.user], ["python", env.python], ["kagexp", env.kagexp],
    ["platform", env.platform], ["gpus", Array.isArray(env.gpus) ? env.gpus.join(", ") || "none" : env.gpus], ["cwd", env.cwd],
  ];
  if (own.rerun_of) rows.push(["rerun of", own.rerun_of]);
  part.append(kvTable(rows.filter((r) => r[1] !== null && r[1] !== undefined)));
  const packages = isNum(env.packages) ? DATA.packages[env.packages] : null;
  if (packages) {
    const names = Object.keys(packages).sort();
    part.append(el("details", {}, el("summary", {}, names.length + " packages"), kvTable(names.map((n) => [n, packages[n]]))));
  }
  const other = Object.entries(env).filter(([k]) => !["git", "code_hash", "host", "user", "python", "kagexp", "platform", "gpus", "cwd", "packages", "seed", "command", "pid"].includes(k));
  if (other.length) part.append(el("details", {}, el("summary", {}, "more (" + other.map((p) => p[0]).join(", ") + ")"), kvTable(other)));
  part.append(el("h3", {}, "Files"));
  const files = [];
  for (let i = 0; i < raw.f.length; i += 2) files.push([DATA.files[raw.f[i]], bytes(raw.f[i + 1])]);
  part.append(files.length ? kvTable(files) : el("p", { class: "muted" }, "none"));
  return part;
}

// --- the experiment tree ------------------------------------------------------------------

function renderTree() {
  const names = new Set(EXPS.map((e) => e.name));
  const children = new Map();
  const roots = [];
  for (const e of EXPS) {
    if (e.parent && names.has(e.parent) && e.parent !== e.name) {
      if (!children.has(e.parent)) children.set(e.parent, []);
      children.get(e.parent).push(e);
    } else roots.push(e);
  }
  const seen = new Set();
  const branch = (list) => {
    const ul = el("ul");
    for (const e of list) {
      if (seen.has(e.name)) continue; // a loop in hand-edited lineage files
      seen.add(e.name);
      const li = el("li", { "data-exp": e.name }, treeNode(e));
      if (children.has(e.name)) li.append(branch(children.get(e.name)));
      ul.append(li);
    }
    return ul;
  };
  const tree = branch(roots);
  const orphans = EXPS.filter((e) => !seen.has(e.name));
  if (orphans.length) tree.append(...branch(orphans).children);
  document.getElementById("tree").replaceChildren(tree);
}

function treeNode(e) {
  const open = el("button", { type: "button", title: "list its runs", onclick: () => { state.exp = e.name; document.getElementById("exp").value = e.name; state.page = 0; switchTab("runs"); refresh(); } }, e.name);
  const node = el("span", { class: "node" }, open, el("span", { class: "muted" }, plural(e.runs, "run")));
  if (e.best !== null) node.append(el("span", { class: "best" }, `best ${DATA.metric} ${fmt(e.best)} (${e.best_run})`));
  if (isNum(e.delta)) node.append(el("span", { class: "delta " + better(e.delta) }, fmtDelta(e.delta) + " vs " + e.parent));
  if (e.note) node.append(el("span", { class: "note" }, e.note));
  return node;
}

// --- plots --------------------------------------------------------------------------------

function niceStep(range, count) {
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

function linearTicks(lo, hi, count) {
  const step = niceStep(hi - lo, count);
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push([t, (Math.abs(t) < step / 2 ? 0 : t).toFixed(Math.min(digits, 12))]);
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  const span = Math.log10(hi) - Math.log10(lo);
  const steps = span > 6 ? [1] : span > 2.5 ? [1] : [1, 2, 5];
  for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
    for (const s of steps) {
      const t = s * 10 ** p;
      if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push([t, t >= 1e-3 && t < 1e5 ? String(Number(t.toPrecision(3))) : t.toExponential(0)]);
    }
  }
  return ticks;
}

function extent(values, log) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (log) return [lo / 1.3, hi * 1.3];
  if (lo === hi) { const pad = Math.abs(lo) * 0.01 || 1; return [lo - pad, hi + pad]; }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

function minMax(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

// A plot of points (with labels when few) or of lines (series), axes zoomed to the data.
function plot(spec) {
  const width = spec.width || 520, height = spec.height || 300;
  const m = { left: 64, right: 16, top: 10, bottom: 44 };
  const all = spec.series ? spec.series.flatMap((s) => s.points) : spec.points;
  const xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  const [xlo, xhi] = spec.xlog ? extent(minMax(xs), true) : extent(minMax(xs), false);
  const [ylo, yhi] = extent(minMax(ys), false);
  const W = width - m.left - m.right, H = height - m.top - m.bottom;
  const sx = spec.xlog ? (v) => m.left + ((Math.log10(v) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo))) * W : (v) => m.left + ((v - xlo) / (xhi - xlo)) * W;
  const sy = (v) => m.top + H - ((v - ylo) / (yhi - ylo)) * H;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(svgEl("title", {}, spec.title));
  let xticks = spec.xlog ? logTicks(xlo, xhi) : linearTicks(xlo, xhi, Math.max(2, Math.floor(W / 90)));
  if (spec.xint) xticks = xticks.filter(([t]) => Number.isInteger(t));
  for (const [t, label] of xticks) {
    const x = sx(t);
    svg.append(svgEl("line", { class: "gridline", x1: x, x2: x, y1: m.top, y2: m.top + H }));
    svg.append(svgEl("text", { x, y: m.top + H + 14, "text-anchor": "middle" }, label));
  }
  for (const [t, label] of linearTicks(ylo, yhi, Math.max(2, Math.floor(H / 45)))) {
    const y = sy(t);
    svg.append(svgEl("line", { class: "gridline", x1: m.left, x2: m.left + W, y1: y, y2: y }));
    svg.append(svgEl("text", { x: m.left - 5, y: y + 4, "text-anchor": "end" }, label));
  }
  svg.append(svgEl("line", { class: "axis", x1: m.left, x2: m.left + W, y1: m.top + H, y2: m.top + H }));
  svg.append(svgEl("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + H }));
  svg.append(svgEl("text", { x: m.left + W / 2, y: height - 6, "text-anchor": "middle" }, spec.xlabel + (spec.xlog ? " (log)" : "")));
  svg.append(svgEl("text", { x: 12, y: m.top + H / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${m.top + H / 2})` }, spec.ylabel));
  let canvas = null;
  if (spec.series) drawSeries(svg, spec.series, sx, sy);
  else if (spec.points.length > SVG_POINTS_MAX) canvas = pointCanvas(spec.points, sx, sy, width, height);
  else drawPoints(svg, spec.points, sx, sy, m.left + W, spec.labels !== false);
  const fig = el("figure", { "data-plot": spec.id || spec.title }, el("figcaption", {}, spec.title), el("div", { class: "plotbox" }, svg, canvas));
  if (spec.series && spec.series.length > 1) {
    const legend = el("div", { class: "legend" });
    spec.series.forEach((s, i) => legend.append(el("span", { class: "entry" }, el("span", { class: "swatch", style: "background:" + PALETTE[i % PALETTE.length] }), s.label)));
    fig.append(legend);
  }
  if (spec.note) fig.append(el("div", { class: "legend" }, spec.note));
  return fig;
}

// Points as one SVG fragment of numbers and palette colours only (fast for 10,000 runs); the run's
// name and value are shown by a shared tooltip, as text.
function drawPoints(svg, points, sx, sy, right, labelled) {
  const radius = points.length > 2000 ? 2 : 3.5;
  const group = svgEl("g", { class: "points" });
  group.innerHTML = points.map((p, i) => `<circle data-i="${i}" cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="${radius}" fill="${p.color || PALETTE[0]}" fill-opacity="0.8"></circle>`).join("");
  const pick = (ev) => points[Number(ev.target.getAttribute("data-i"))];
  group.addEventListener("mouseover", (ev) => { const p = pick(ev); if (p) showTip(ev, `${p.run.id}: ${p.tip()}`); });
  group.addEventListener("mouseout", hideTip);
  group.addEventListener("click", (ev) => { const p = pick(ev); if (p) { hideTip(); switchTab("runs"); showDetail(p.run); } });
  svg.append(group);
  if (labelled && points.length <= MAX_LABELLED) drawLabels(svg, points, sx, sy, right);
}

// A label beside each point, inside the plot (to the left near its right edge), above it or else
// below it. A label goes only where its own point is the nearest one and it covers no other point
// or label, so it can never be read as another point's; points drawn on the same spot share one
// label ("exp002/run001 +2"). What finds no such place is left to the tooltip.
function drawLabels(svg, points, sx, sy, right) {
  const dots = points.map((p) => [sx(p.x), sy(p.y)]);
  const placed = [];
  const done = new Set();
  const overlaps = (box) => placed.some((b) => box.x1 < b.x2 && b.x1 < box.x2 && box.y1 < b.y2 && b.y1 < box.y2);
  const distance = ([x, y], box) => Math.hypot(Math.max(box.x1 - x, 0, x - box.x2), Math.max(box.y1 - y, 0, y - box.y2));
  const owns = (box, own, same) => dots.every((dot, j) => same.includes(j) || distance(dot, box) > distance(dots[own], box) + 4);
  points.forEach((p, i) => {
    if (done.has(i)) return;
    const [x, y] = dots[i];
    const same = dots.flatMap(([dx, dy], j) => (Math.abs(dx - x) < 1.5 && Math.abs(dy - y) < 1.5 ? [j] : []));
    same.forEach((j) => done.add(j));
    const text = p.run.id + (same.length > 1 ? ` +${same.length - 1}` : "");
    const nearRight = x > right - 90;
    const width = text.length * 6.2;
    const left = nearRight ? x - 6 - width : x + 6;
    const spot = [y - 5, y + 13]
      .map((base) => ({ x1: left, x2: left + width, y1: base - 10, y2: base + 2, base }))
      .find((box) => !overlaps(box) && owns(box, i, same));
    if (!spot) return;
    placed.push(spot);
    svg.append(svgEl("text", { x: nearRight ? x - 6 : x + 6, y: spot.base, "text-anchor": nearRight ? "end" : "start", class: "point-label" }, text));
  });
}

// Many points on a canvas laid over the plot's SVG axes; the nearest point within 6 px is the one
// hovered or clicked.
function pointCanvas(points, sx, sy, width, height) {
  const ratio = window.devicePixelRatio || 1;
  const canvas = el("canvas", { width: width * ratio, height: height * ratio, style: `width:${width}px;height:${height}px`, "data-points": points.length });
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.globalAlpha = 0.75;
  const xs = new Float64Array(points.length), ys = new Float64Array(points.length);
  const byColor = new Map();
  points.forEach((p, i) => {
    xs[i] = sx(p.x);
    ys[i] = sy(p.y);
    const color = p.color || PALETTE[0];
    if (!byColor.has(color)) byColor.set(color, []);
    byColor.get(color).push(i);
  });
  for (const [color, indexes] of byColor) {
    ctx.fillStyle = color;
    for (const i of indexes) { ctx.beginPath(); ctx.arc(xs[i], ys[i], 2, 0, 2 * Math.PI); ctx.fill(); } // one path each: fastest here
  }
  const nearest = (ev) => {
    const box = canvas.getBoundingClientRect();
    const scale = width / box.width; // the plot shrinks with a narrow window
    const x = (ev.clientX - box.left) * scale, y = (ev.clientY - box.top) * scale;
    let best = -1, distance = 36;
    for (let i = 0; i < xs.length; i++) {
      const d = (xs[i] - x) ** 2 + (ys[i] - y) ** 2;
      if (d < distance) { distance = d; best = i; }
    }
    return best < 0 ? null : points[best];
  };
  canvas.addEventListener("mousemove", (ev) => {
    const p = nearest(ev);
    canvas.style.cursor = p ? "pointer" : "default";
    if (p) showTip(ev, `${p.run.id}: ${p.tip()}`); else hideTip();
  });
  canvas.addEventListener("mouseleave", hideTip);
  canvas.addEventListener("click", (ev) => { const p = nearest(ev); if (p) { hideTip(); switchTab("runs"); showDetail(p.run); } });
  return canvas;
}

function showTip(ev, text) {
  const tip = document.getElementById("tip");
  tip.textContent = text;
  tip.style.left = ev.clientX + 12 + "px";
  tip.style.top = ev.clientY + 12 + "px";
  tip.hidden = false;
}

function hideTip() { document.getElementById("tip").hidden = true; }

function drawSeries(svg, series, sx, sy) {
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => (j ? "L" : "M") + sx(p.x).toFixed(1) + " " + sy(p.y).toFixed(1)).join("");
    const path = svgEl("path", { d, fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 1.6 });
    path.append(svgEl("title", {}, s.label));
    svg.append(path);
  });
}

function historyPoints(series) {
  const [values, steps] = series;
  return values.map((y, i) => ({ x: steps ? steps[i] : i, y })).filter((p) => isNum(p.x) && isNum(p.y));
}

function expColor(run) { return PALETTE[run.raw.e % PALETTE.length]; }

function renderPlots() {
  const box = document.getElementById("plots");
  const runs = state.shown;
  const figures = [];
  const name = DATA.metric;
  const scored = METRIC_INDEX < 0 ? [] : runs.filter((r) => isNum(projectMetric(r)));
  if (scored.length) {
    const order = [...scored].sort((a, b) => a.index - b.index);
    const points = order.map((r, i) => ({ x: i + 1, y: projectMetric(r), run: r, color: expColor(r), tip: () => `${name} ${fmt(projectMetric(r))}` }));
    figures.push(plot({ id: "per-run", title: `${name} per run`, xlabel: "run, in name order as kagexp runs lists them (colour: experiment)", ylabel: name, points, xint: true, width: 640 }));
    for (const k of DATA.varying) figures.push(...keyPlot(scored, k));
    const both = scored.filter((r) => isNum(r.raw.lb));
    if (both.length) {
      const pts = both.map((r) => ({ x: projectMetric(r), y: r.raw.lb, run: r, color: expColor(r), tip: () => `${name} ${fmt(projectMetric(r))}, LB ${fmt(r.raw.lb)}` }));
      const cv = /^cv$/i.test(name) ? name : `${name} (CV)`;
      figures.push(plot({ id: "cv-lb", title: `${cv} against LB`, xlabel: cv, ylabel: "LB", points: pts }));
    }
  }
  figures.push(...foldPlots(runs));
  figures.push(...historyPlots(runs));
  if (!figures.length) figures.push(el("p", { class: "muted" }, "Nothing to plot: no run of these has a value of the project's metric or a history."));
  box.replaceChildren(...figures);
}

// Each run's per-fold scores as points above its position: folds are not time steps.
function foldPlots(runs) {
  const withFolds = runs.filter((r) => r.raw.fo).sort((a, b) => a.index - b.index);
  const byMetric = new Map();
  withFolds.forEach((r, i) => {
    for (const [m, series] of Object.entries(r.raw.fo)) {
      if (!byMetric.has(m)) byMetric.set(m, []);
      for (const [fold, value] of foldPairs(series)) {
        if (isNum(value)) byMetric.get(m).push({ x: i + 1, y: value, run: r, color: expColor(r), tip: () => `fold ${fmt(fold)}: ${METRICS[m]} ${fmt(value)}` });
      }
    }
  });
  return [...byMetric].filter(([, points]) => points.length).map(([m, points]) => plot({
    id: "folds-" + METRICS[m], title: `${METRICS[m]} per fold`, xlabel: "run, in name order as kagexp runs lists them (one point per fold)", ylabel: METRICS[m], points, xint: true, labels: false, width: 640,
  }));
}

function keyPlot(runs, k) {
  const pairs = runs.map((r) => [configValue(r, k), r]).filter((p) => isNum(p[0]));
  const distinct = new Set(pairs.map((p) => p[0]));
  if (distinct.size < 2) return [];
  const [lo, hi] = minMax(pairs.map((p) => p[0]));
  const log = lo > 0 && hi / lo >= 100;
  const points = pairs.map(([x, r]) => ({ x, y: projectMetric(r), run: r, color: expColor(r), tip: () => `${KEYS[k]} ${fmt(x)}, ${DATA.metric} ${fmt(projectMetric(r))}` }));
  return [plot({ id: "key-" + KEYS[k], title: `${DATA.metric} against ${KEYS[k]}`, xlabel: KEYS[k], ylabel: DATA.metric, points, xlog: log })];
}

function historyPlots(runs) {
  const withHistory = runs.filter((r) => r.raw.h).slice(0, MAX_HISTORY_RUNS);
  const byMetric = new Map();
  for (const r of withHistory) {
    for (const [m, series] of Object.entries(r.raw.h)) {
      if (!byMetric.has(m)) byMetric.set(m, []);
      const points = historyPoints(series);
      if (points.length) byMetric.get(m).push({ label: r.id, points });
    }
  }
  const more = runs.filter((r) => r.raw.h).length - withHistory.length;
  const note = more > 0 ? `the first ${MAX_HISTORY_RUNS} runs in the table's order (${more} more: filter or sort to choose)` : null;
  return [...byMetric].map(([m, series]) => plot({ id: "history-" + METRICS[m], title: `${METRICS[m]} history`, xlabel: "step", ylabel: METRICS[m], series, note }));
}

// --- tabs and start -----------------------------------------------------------------------

function switchTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll(".tab")) button.classList.toggle("active", button.dataset.tab === tab);
  for (const name of ["runs", "tree", "plots"]) document.getElementById("tab-" + name).hidden = name !== tab;
  if (tab === "plots") renderPlots();
}

function start() {
  document.getElementById("project").textContent = DATA.project;
  const metric = DATA.metric ? `metric ${DATA.metric} (${DATA.direction === "min" ? "lower" : "higher"} is better)` : "no project metric (kagexp.yml `metric: name`)";
  document.getElementById("summary").textContent = `${plural(RUNS.length, "run")} in ${plural(EXPS.length, "experiment")} · ${metric}`;
  state.columns = buildColumns();
  if (METRIC_INDEX >= 0) { state.sort = "m" + METRIC_INDEX; state.desc = DATA.direction !== "min"; }
  setupControls();
  for (const button of document.querySelectorAll(".tab")) button.addEventListener("click", () => switchTab(button.dataset.tab));
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDetail(); });
  renderTree();
  switchTab("runs");
  refresh();
  document.documentElement.dataset.ready = Math.round(performance.now()); // ms from navigation start: usable
}

start();
