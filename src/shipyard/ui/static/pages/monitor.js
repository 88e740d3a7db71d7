// /ui/monitoring/<endpoint>: drift per feature (test, statistic, p-value, effect size,
// drifted?) with the reference and current distributions overlaid, data quality (missing,
// out of range, unseen categories, type errors), live accuracy over time per model version,
// alert rules and their history. The time range and the feature shown are in the URL:
//   ?window=1h&col=mean%20radius   (no window: the monitor's own, as last evaluated)
import { api, errorBox, fmtNum, fmtTime, h, loadPlotly, plot, setQuery, useStyle } from "../app.js";
import { accuracyText, duration } from "./monitoring.js";

const WINDOWS = [
  ["", "the monitor's window"],
  ["15m", "last 15 minutes"],
  ["1h", "last hour"],
  ["6h", "last 6 hours"],
  ["1d", "last day"],
  ["7d", "last 7 days"],
];
const VALID_WINDOW = /^\d+(\.\d+)?[smhdw]$/;
const COLOURS = { reference: "#8c959f", current: "#0a58ca" };

export async function render({ main, params, query: q, signal }) {
  useStyle("deploy.css");
  const name = params[0];
  const enc = encodeURIComponent(name);
  const asked = q.get("window") || "";
  const window = VALID_WINDOW.test(asked) ? asked : "";
  const w = window ? `&window=${encodeURIComponent(window)}` : "";
  main.replaceChildren(
    ...[
      h("h1", {}, "Monitoring ", h("code", {}, name)),
      toolbar(window),
      asked && !window ? errorBox(`window "${asked}" is not a duration like 15m, 1h or 7d: showing the monitor's own`) : null,
      h("p", { class: "muted" }, "Evaluating…"),
    ].filter(Boolean),
  );
  const get = (path) => api(path, { signal });
  const [ev, acc, alerts] = await Promise.all([
    get(`/api/monitoring/${enc}?distributions=true${w}`),
    get(`/api/monitoring/${enc}/accuracy?buckets=24${w}`),
    get(`/api/monitoring/${enc}/alerts?limit=100`),
  ]);
  const view = { signal, q, ev };
  main.lastChild.replaceWith(
    summary(ev),
    ...driftSection(view),
    ...qualitySection(ev),
    ...accuracySection(view, ev, acc),
    ...alertsSection(alerts),
  );
  drawSelected(view);
  drawAccuracy(view, acc);
}

function toolbar(window) {
  const select = h(
    "select",
    { id: "window", onchange: (ev) => setQuery({ window: ev.target.value, col: null }) },
    [...WINDOWS, ...(WINDOWS.some(([v]) => v === window) ? [] : [[window, `last ${window}`]])].map(([v, label]) =>
      h("option", { value: v, selected: v === window }, label),
    ),
  );
  return h("div", { class: "toolbar" }, h("label", { for: "window" }, "Time range "), select);
}

function summary(ev) {
  const rows = [
    ["Window", `last ${duration(ev.window_seconds)}`],
    ["Evaluated", fmtTime(ev.at_ms)],
    ev.model_version != null && ["Model version", `v${ev.model_version}`],
    ["Rows", fmtNum(ev.rows)],
  ].filter(Boolean);
  return h(
    "div",
    {},
    h("dl", { class: "kv", id: "summary" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    ev.error ? h("p", { class: "muted", id: "monitor-error" }, `Nothing to evaluate: ${ev.error}`) : null,
  );
}

// ---- drift -------------------------------------------------------------------------------------

function driftColumns(ev) {
  const cols = Object.values((ev.drift && ev.drift.columns) || {});
  return cols.sort((a, b) => Number(b.drifted) - Number(a.drifted) || (a.p_adjusted ?? 1) - (b.p_adjusted ?? 1));
}

function selectedColumn(view) {
  const cols = driftColumns(view.ev);
  const dists = view.ev.distributions || {};
  const asked = view.q.get("col");
  if (asked && dists[asked]) return asked;
  const first = cols.find((c) => dists[c.column]);
  return first ? first.column : null;
}

function driftSection(view) {
  const ev = view.ev;
  const out = [h("h2", { id: "drift-h" }, "Drift per feature")];
  if (!ev.drift) return [...out, h("p", { class: "muted" }, "No drift computed in this window.")];
  const d = ev.drift;
  out.push(
    h(
      "p",
      {},
      d.drifted_columns.length
        ? `${d.drifted_columns.length} of ${Object.keys(d.columns).length} features drifted `
        : "No feature drifted ",
      h("span", { class: "muted" }, `(adjusted p < ${d.alpha}, ${d.correction} correction${d.min_effect != null ? `, effect ≥ ${d.min_effect}` : ""}). Select a feature to see its distribution.`),
    ),
  );
  const selected = selectedColumn(view);
  view.chart = h("div", { class: "chart chart-box", id: "overlay" });
  view.caption = h("figcaption", { class: "muted" });
  const head = ["Feature", "Test", "Statistic", "p (adjusted)", "Effect size", "PSI", "Drifted"];
  const rows = driftColumns(ev).map((c) => driftRow(view, c, c.column === selected));
  out.push(
    h(
      "div",
      { class: "two" },
      h(
        "div",
        { style: { overflow: "auto", maxHeight: "520px" } },
        h(
          "table",
          { class: "plain", id: "drift" },
          h("caption", { class: "sr-only" }, "Drift tests per feature, drifted first"),
          h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows),
        ),
      ),
      h("figure", { class: "plot" }, view.chart, view.caption),
    ),
  );
  return out;
}

const EFFECT = { wasserstein_std: "W (sd)", jensen_shannon: "JS" };

function driftRow(view, c, current) {
  const has = !!(view.ev.distributions || {})[c.column];
  const label = has
    ? h("button", { type: "button", class: "linklike", title: "Show its distribution", onclick: () => choose(view, c.column) }, c.column)
    : c.column;
  return h(
    "tr",
    { dataset: { column: c.column }, "aria-current": current ? "true" : null },
    h("th", { scope: "row" }, label),
    h("td", {}, c.test),
    h("td", { class: "num" }, fmtNum(sig(c.statistic))),
    h("td", { class: "num" }, fmtNum(sig(c.p_adjusted))),
    h("td", { class: "num nowrap" }, `${fmtNum(sig(c.effect_size))} `, h("span", { class: "muted" }, EFFECT[c.effect_metric] || c.effect_metric)),
    h("td", { class: "num" }, fmtNum(sig(c.psi))),
    h("td", { class: c.drifted ? "bad" : "good" }, c.drifted ? "yes" : "no"),
  );
}

function sig(v) {
  return v === null || v === undefined ? v : Number(v.toPrecision(4));
}

function choose(view, column) {
  setQuery({ col: column }, { rerender: false });
  for (const tr of document.querySelectorAll("#drift tbody tr")) {
    if (tr.dataset.column === column) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
  }
  view.q = new URLSearchParams(location.search);
  drawSelected(view);
}

async function drawSelected(view) {
  const column = view.chart && selectedColumn(view);
  if (!column) return;
  const d = view.ev.distributions[column];
  view.caption.textContent = `Distribution of ${column}: the training reference (grey) against the current window (blue), as shares of each sample's rows.`;
  view.chart.dataset.column = column;
  try {
    const Plotly = await loadPlotly();
    if (view.signal.aborted) return;
    const bar = (key, label, rows) => ({
      type: "bar",
      name: `${label} (${fmtNum(rows)} rows)`,
      x: d.labels,
      y: d[key],
      marker: { color: COLOURS[key] },
      opacity: key === "current" ? 0.6 : 0.9,
    });
    await plot(
      view.chart,
      [bar("reference", "reference", d.reference_rows), bar("current", "current", d.current_rows)],
      {
        title: { text: column, font: { size: 14 } },
        barmode: "overlay",
        bargap: 0.05,
        margin: { l: 55, r: 10, t: 40, b: 110 },
        xaxis: { type: "category", tickangle: -45, automargin: true, title: { text: d.kind === "numeric" ? "bins of the reference (quantiles)" : "category" } },
        yaxis: { title: { text: "share of rows" }, tickformat: ".0%" },
        legend: { orientation: "h", y: 1.12 },
      },
      {},
    );
  } catch (err) {
    if (!view.signal.aborted) view.chart.replaceChildren(errorBox(err));
  }
}

// ---- data quality ------------------------------------------------------------------------------

function qualitySection(ev) {
  const out = [h("h2", { id: "quality-h" }, "Data quality")];
  const q = ev.quality;
  if (!q) return [...out, h("p", { class: "muted" }, "No data-quality check in this window.")];
  const missing = (q.missing_columns || []).length ? `Columns missing from the traffic: ${q.missing_columns.join(", ")}. ` : "";
  const extra = (q.new_columns || []).length ? `Columns not in the training data: ${q.new_columns.join(", ")}.` : "";
  if (missing || extra) out.push(h("p", { class: "bad" }, missing, extra));
  const head = ["Feature", "Missing", "Missing (training)", "Out of range", "Unseen categories", "Type errors", "Verdict"];
  const cols = Object.values(q.columns).sort((a, b) => b.violations - a.violations);
  out.push(
    h(
      "table",
      { class: "plain", id: "quality" },
      h("caption", { class: "sr-only" }, "Data quality per feature, most violations first"),
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        cols.map((c) =>
          h(
            "tr",
            { dataset: { column: c.column } },
            h("th", { scope: "row" }, c.column),
            h("td", { class: "num" + (c.missing_excess ? " bad" : "") }, pct(c.missing_rate)),
            h("td", { class: "num" }, pct(c.reference_missing_rate)),
            h("td", { class: "num" + (c.out_of_range ? " bad" : "") }, fmtNum(c.out_of_range)),
            h("td", { class: "num" }, fmtNum(c.unseen_categories), c.unseen_examples && c.unseen_examples.length ? h("span", { class: "muted" }, ` (${c.unseen_examples.slice(0, 3).join(", ")})`) : ""),
            h("td", { class: "num" + (c.invalid ? " bad" : "") }, fmtNum(c.invalid)),
            h("td", { class: c.violations ? "bad" : "good" }, c.verdict),
          ),
        ),
      ),
    ),
  );
  return out;
}

function pct(v) {
  return v === null || v === undefined ? "" : fmtNum(Math.round(v * 10000) / 100) + " %";
}

// ---- accuracy ----------------------------------------------------------------------------------

function accuracySection(view, ev, acc) {
  const out = [h("h2", { id: "accuracy-h" }, "Live accuracy")];
  const a = ev.accuracy;
  if (a && a.overall && Object.keys(a.overall).length) {
    const rows = [["All versions", accuracyText(a.overall)], ...Object.entries(a.by_version || {}).map(([v, m]) => [`v${v}`, accuracyText(m)])];
    rows.push(["Labelled rows", fmtNum(a.labelled_rows)]);
    out.push(h("dl", { class: "kv", id: "accuracy-now" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  }
  if (acc.not_computable) {
    out.push(h("p", { class: "muted", id: "accuracy-why" }, acc.not_computable));
    return out;
  }
  view.accChart = h("div", { class: "chart", id: "accuracy-chart" });
  const every = duration(Math.round(acc.bucket_ms / 1000));
  out.push(
    h(
      "figure",
      { class: "plot" },
      view.accChart,
      h("figcaption", { class: "muted" }, `Live ${acc.metric} by model version over intervals of ${every}, from the labels sent back.`),
    ),
  );
  return out;
}

async function drawAccuracy(view, acc) {
  if (!view.accChart) return;
  try {
    const Plotly = await loadPlotly();
    if (view.signal.aborted) return;
    const traces = Object.entries(acc.versions).map(([v, points]) => ({
      type: "scatter",
      mode: "lines+markers",
      name: `v${v}`,
      x: points.map((p) => new Date(p.t + acc.bucket_ms / 2).toISOString()),
      y: points.map((p) => p.value),
      text: points.map((p) => `${p.n} labelled rows`),
    }));
    await plot(
      view.accChart,
      traces,
      {
        margin: { l: 55, r: 10, t: 20, b: 40 },
        xaxis: { type: "date", range: [new Date(acc.start_ms).toISOString(), new Date(acc.end_ms).toISOString()] },
        yaxis: { title: { text: acc.metric } },
        legend: { orientation: "h" },
      },
      {},
    );
  } catch (err) {
    if (!view.signal.aborted) view.accChart.replaceChildren(errorBox(err));
  }
}

// ---- alerts ------------------------------------------------------------------------------------

function alertsSection(doc) {
  const out = [h("h2", { id: "alerts-h" }, "Alerts")];
  if (!doc.rules.length) {
    out.push(h("p", { class: "muted" }, "No alert rule: `shipyard monitor alert add` makes one."));
  } else {
    out.push(
      simpleTable("alert-rules", "Alert rules", ["Rule", "Condition", "For", "State", "Actions"], doc.rules.map((r) => [
        r.name,
        r.condition,
        `${r.for_windows} window${r.for_windows > 1 ? "s" : ""}`,
        h("span", { class: "state-" + r.state }, r.state),
        r.actions.join(", ") || "none",
      ])),
    );
  }
  out.push(h("h3", {}, "History"));
  if (!doc.events.length) return [...out, h("p", { class: "muted" }, "No alert fired yet.")];
  out.push(
    simpleTable("alert-events", "Alerts fired and resolved, newest first", ["When", "Rule", "Event", "Value", "Cause", "Action taken"], doc.events.map((e) => [
      fmtTime(e.ts),
      e.rule,
      h("span", { class: e.kind === "fired" ? "state-firing" : "state-ok" }, e.kind),
      fmtNum(e.value),
      causeText(e.cause),
      e.action && Object.keys(e.action).length ? h("pre", { class: "json" }, JSON.stringify(e.action)) : "none",
    ])),
  );
  return out;
}

function causeText(c) {
  if (!c) return "";
  const parts = [];
  if (c.metric) parts.push(`${c.metric} ${fmtNum(c.value)} vs ${fmtNum(c.threshold)}`);
  if (c.windows) parts.push(`${c.windows} window(s)`);
  if (c.model_version != null) parts.push(`v${c.model_version}`);
  if (c.drifted_columns && c.drifted_columns.length) parts.push(`drifted: ${c.drifted_columns.join(", ")}`);
  return parts.join("; ") || JSON.stringify(c);
}

function simpleTable(id, caption, head, rows) {
  return h(
    "table",
    { class: "plain", id },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}
