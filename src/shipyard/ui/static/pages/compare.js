// /ui/compare: 2–100 runs side by side. A diff table (rows = attributes, params, metrics, tags;
// one column per run; a virtualised grid, so 100 runs × hundreds of keys cost a screenful of
// DOM), one metric's history overlaid per run, and parallel coordinates of the params that vary
// against that metric. The runs come in one request (the filter language's IN); the view's
// state is all in the URL:
//   ?runs=id1,id2,…&diff=1&metric=auc&pc=lr,depth
import { api, errorBox, fmtNum, fmtTime, h, link, setQuery, useStyle } from "../app.js";
import { Grid } from "../grid.js";
import { MAX_AXES, drawMetric, drawParcoords, pickParams } from "../compare-plots.js";

export const MAX_RUNS = 100;
const RUN_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The runs asked for, in the URL's order, without repeats. */
function runIds(q) {
  const seen = new Set();
  for (const id of (q.get("runs") || "").split(",")) {
    const t = id.trim();
    if (t) seen.add(t);
  }
  return [...seen];
}

/** Every run in one search (`attributes.run_id IN (…)`), put back in the URL's order. */
async function fetchRuns(ids, signal) {
  const valid = ids.filter((id) => RUN_ID.test(id));
  if (!valid.length) return { runs: [], missing: ids };
  const list = valid.map((id) => `'${id.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`).join(", ");
  const p = new URLSearchParams({ filter: `attributes.run_id IN (${list})`, limit: String(MAX_RUNS) });
  const page = await api("/api/runs?" + p, { signal });
  const byId = new Map(page.runs.map((r) => [r.id, r]));
  // the short ids the CLI prints: each the one run whose id starts with it
  const short = ids.filter((id) => !byId.has(id) && /^[0-9a-f]{4,31}$/i.test(id));
  const found = await Promise.all(
    short.map(async (id) => {
      const q = new URLSearchParams({ filter: `attributes.run_id LIKE '${id.toLowerCase()}%'`, limit: "2" });
      const got = await api("/api/runs?" + q, { signal });
      return got.runs.length === 1 ? [id, got.runs[0]] : null;
    }),
  );
  for (const pair of found) if (pair) byId.set(pair[0], pair[1]);
  return {
    runs: ids.map((id) => byId.get(id)).filter(Boolean),
    missing: ids.filter((id) => !byId.has(id)),
  };
}

// [row key, label, value(run), shown(value, run)]
const ATTRIBUTES = [
  ["name", "run", (r) => r.name || r.id, (v, r) => link(`/runs/${encodeURIComponent(r.id)}`, v)],
  ["id", "id", (r) => r.id],
  ["experiment", "experiment", (r) => r.experiment],
  ["status", "status", (r) => r.status, (v) => h("span", { class: "status-" + v }, v)],
  ["user", "user", (r) => r.user],
  ["start_time", "started", (r) => r.start_time, (v) => fmtTime(v)],
  ["duration", "duration", (r) => (r.end_time ? (r.end_time - r.start_time) / 1000 : undefined), (v) => `${fmtNum(v)} s`],
  ["git_commit", "git commit", (r) => r.git_commit || undefined, (v) => String(v).slice(0, 12)],
  ["source", "source", (r) => r.source || undefined],
  ["parent_run_id", "parent run", (r) => r.parent_run_id || undefined],
];

function same(values) {
  const first = values[0];
  if (first === undefined || first === null) return false;
  return values.every((v) => v === first);
}

function bagRows(kind, runs, format) {
  const keys = new Set();
  for (const r of runs) for (const k of Object.keys(r[kind] || {})) keys.add(k);
  return [...keys].sort().map((key) => {
    const values = runs.map((r) => (r[kind] || {})[key]);
    return { kind, key, label: key, values, differs: !same(values), show: format };
  });
}

/** The diff table's rows: per section a heading row, then one row per key. */
export function tableRows(runs) {
  const attributes = [];
  for (const [key, label, value, show] of ATTRIBUTES) {
    const values = runs.map(value);
    if (values.every((v) => v === undefined || v === null)) continue;
    attributes.push({ kind: "attributes", key, label, values, differs: !same(values), show });
  }
  const sections = [
    ["attributes", "Attributes", attributes],
    ["params", "Params", bagRows("params", runs)],
    ["metrics", "Metrics", bagRows("metrics", runs, (v) => fmtNum(v))],
    ["tags", "Tags", bagRows("tags", runs)],
  ];
  return sections.filter(([, , rows]) => rows.length).map(([kind, title, rows]) => ({ kind, title, rows }));
}

/** The rows in view: everything, or (diff only) the rows whose value is not the same in every
 * run — the run names always, as the table's anchor. */
function visibleRows(sections, diffOnly) {
  const out = [];
  for (const s of sections) {
    const rows = diffOnly ? s.rows.filter((r) => r.differs || r.key === "name") : s.rows;
    if (!rows.length) continue;
    const differing = s.rows.filter((r) => r.differs).length;
    const counts = s.kind === "attributes" ? "" : ` — ${differing} of ${s.rows.length} differ`;
    out.push({ heading: `${s.title}${counts}`, kind: s.kind }, ...rows);
  }
  return out;
}

function cell(row, run, j) {
  if (row.heading) return "";
  const v = row.values[j];
  if (v === undefined || v === null) return h("span", { class: "cmp-missing cmp-diff", title: "not set" }, "—");
  const text = row.show ? row.show(v, run) : String(v);
  if (!row.differs || row.key === "name" || row.key === "id") return text;
  // a differing row: the cells that are not the first run's value stand out
  return v === row.values[0] ? text : h("span", { class: "cmp-diff" }, text);
}

function makeGrid(runs, rows) {
  const columns = runs.map((run, j) => ({
    key: run.id,
    title: run.name || run.id.slice(0, 8),
    cell: (row) => cell(row, run, j),
  }));
  return new Grid({
    label: `Comparison of ${runs.length} runs`,
    rowCount: rows.length,
    columns,
    fixed: {
      title: "key",
      width: 240,
      cell: (row) =>
        row.heading
          ? h("span", { class: "cmp-section", "data-section": row.kind }, row.heading)
          : h("span", { class: row.differs ? "cmp-label differs" : "cmp-label", "data-row": `${row.kind}.${row.key}`, title: row.label },
              row.differs && row.key !== "name" ? h("span", { class: "cmp-mark", "aria-label": "differs" }, "≠ ") : "", row.label),
    },
    row: (i) => rows[i],
  });
}

function notice(main, ...content) {
  main.append(h("p", { class: "muted", role: "status" }, ...content));
}

export async function render({ main, query: q, signal }) {
  useStyle("compare.css");
  const ids = runIds(q);
  const back = link(`/runs?${new URLSearchParams({ sel: ids.slice(0, MAX_RUNS).join(",") })}`, "back to the runs");
  main.replaceChildren(h("h1", {}, "Compare runs"));
  if (ids.length > MAX_RUNS) {
    main.append(h("p", { class: "error", role: "alert" },
      `${ids.length} runs asked for: compare takes at most ${MAX_RUNS}. Pick fewer runs on the runs page (`, back, ")."));
    return;
  }
  if (ids.length < 2) {
    notice(main, "Pick 2 to 100 runs to compare: tick them on the ", link("/runs", "runs page"), " and press Compare.");
    return;
  }
  const loading = h("p", { class: "muted" }, `Loading ${ids.length} runs…`);
  main.append(loading);
  let found;
  try {
    found = await fetchRuns(ids, signal);
  } catch (err) {
    if (err.status >= 400 && err.status < 500) return void loading.replaceWith(errorBox(err));
    throw err;
  }
  loading.remove();
  const { runs, missing } = found;
  if (missing.length) notice(main, `${missing.length} of the runs asked for not found: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? "…" : ""}`);
  if (runs.length < 2) return void notice(main, "Fewer than 2 runs to compare (", back, ").");
  showComparison(main, runs, q, signal, back);
}

function showComparison(main, runs, q, signal, back) {
  const sections = tableRows(runs);
  const state = { diff: q.get("diff") === "1" };
  const summary = h("span", { "aria-live": "polite" });
  const holder = h("div", { class: "cmp-table" });
  let grid = null;
  const drawTable = () => {
    if (grid) grid.destroy();
    const rows = visibleRows(sections, state.diff);
    grid = makeGrid(runs, rows);
    holder.replaceChildren(grid.el);
    grid.draw();
    summary.textContent = summaryText(runs, sections);
  };
  signal.addEventListener("abort", () => grid && grid.destroy());
  const diff = h("input", {
    type: "checkbox",
    id: "cmp-diff",
    checked: state.diff,
    onchange: (ev) => {
      state.diff = ev.target.checked;
      setQuery({ diff: state.diff }, { rerender: false });
      drawTable();
    },
  });
  main.append(
    h("p", { class: "toolbar" }, summary, h("label", { class: "check" }, diff, "diff only"), back),
    holder,
  );
  drawTable();
  performance.mark("compare:table"); // the first rows are in the DOM (tests read this)
  // the plots (and plotly.js's parse) wait until the table has been painted
  requestAnimationFrame(() => setTimeout(() => signal.aborted || showPlots(main, runs, sections, q, signal), 0));
}

function summaryText(runs, sections) {
  const parts = [`${runs.length} runs`];
  for (const s of sections) {
    if (s.kind === "attributes") continue;
    parts.push(`${s.rows.filter((r) => r.differs).length} of ${s.rows.length} ${s.kind} differ`);
  }
  return parts.join(" · ");
}

/** The metric chart and the parallel coordinates, below the table (drawn after it). */
function showPlots(main, runs, sections, q, signal) {
  const metrics = (sections.find((s) => s.kind === "metrics") || { rows: [] }).rows;
  const params = (sections.find((s) => s.kind === "params") || { rows: [] }).rows.filter((r) => r.differs);
  if (!metrics.length) {
    notice(main, "These runs logged no metric: nothing to chart.");
    return;
  }
  const keys = metrics.map((r) => r.key);
  const firstDiffering = metrics.find((r) => r.differs) || metrics[0];
  let metric = keys.includes(q.get("metric")) ? q.get("metric") : firstDiffering.key;
  let chosen = pickParams(params.map((r) => r.key), q.get("pc"));
  const chart = h("div", { class: "cmp-plot", id: "cmp-chart" });
  const coords = h("div", { class: "cmp-plot", id: "cmp-parcoords" });
  const chartNote = h("p", { class: "muted", role: "status" });
  const coordsNote = h("p", { class: "muted", role: "status" });
  const redraw = (what) => {
    if (what.chart) drawMetric(chart, chartNote, runs, metric, signal);
    if (what.coords) drawParcoords(coords, coordsNote, runs, params, chosen, metric, signal);
  };
  const metricSelect = h("select", {
    id: "cmp-metric",
    onchange: (ev) => {
      metric = ev.target.value;
      setQuery({ metric }, { rerender: false });
      redraw({ chart: true, coords: true });
    },
  }, keys.map((k) => h("option", { value: k, selected: k === metric }, k)));
  const paramSelect = h("select", {
    id: "cmp-params",
    multiple: true,
    size: Math.min(8, Math.max(2, params.length)),
    onchange: (ev) => {
      chosen = [...ev.target.selectedOptions].map((o) => o.value).slice(0, MAX_AXES);
      setQuery({ pc: chosen.join(",") || "-" }, { rerender: false }); // "-": none
      redraw({ coords: true });
    },
  }, params.map((r) => h("option", { value: r.key, selected: chosen.includes(r.key) }, r.key)));
  main.append(
    h("p", { class: "toolbar" }, h("label", { for: "cmp-metric" }, "Metric "), metricSelect),
    h("div", { class: "cmp-plots" },
      h("section", { "aria-labelledby": "cmp-chart-h" }, h("h2", { id: "cmp-chart-h" }, "History, one line per run"), chartNote, chart),
      h("section", { "aria-labelledby": "cmp-pc-h" },
        h("h2", { id: "cmp-pc-h" }, "Params that vary vs the metric"),
        params.length ? h("p", { class: "toolbar" }, h("label", { for: "cmp-params" }, "Axes (params) "), paramSelect) : null,
        coordsNote, coords)),
  );
  redraw({ chart: true, coords: true });
}
