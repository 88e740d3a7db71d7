// Metric charts shared by the run and compare pages. The server downsamples every series to
// min/max buckets (GET /api/runs/<id>/metrics/<key>?max_points=500&min_step=&max_step=), so a
// chart never holds more than ~500 points per series and a one-step spike stays drawn; zooming
// asks the server again for the new step range through `onzoom`.
//
//   await lineChart(el, [{name: "run-1", points: [{step, value}, …]}], {
//     onzoom: (minStep, maxStep) => …,   // null, null: zoomed back out (double click)
//     range: [minStep, maxStep],          // the step range shown (default: all)
//     title: "loss", ytitle: "loss",      // optional
//   });
// Calling lineChart again on the same element redraws it in place (Plotly.react).
import { api, loadPlotly, plot } from "./app.js";

export const MAX_POINTS = 500;
const MAX_LEGEND = 20; // more lines than this: the legend would hide the chart

/** One series of a run's metric as the server downsamples it:
 * {name, points, downsampled, total, min_step, max_step}. */
export async function fetchSeries(runId, key, { minStep, maxStep, maxPoints = MAX_POINTS, signal, name } = {}) {
  const q = new URLSearchParams({ max_points: String(maxPoints) });
  if (minStep !== null && minStep !== undefined && minStep !== "") q.set("min_step", String(minStep));
  if (maxStep !== null && maxStep !== undefined && maxStep !== "") q.set("max_step", String(maxStep));
  const doc = await api(
    `/api/runs/${encodeURIComponent(runId)}/metrics/${encodeURIComponent(key)}?${q}`,
    { signal },
  );
  return { ...doc, name: name || runId };
}

function traces(series) {
  return series.map((s) => ({
    type: "scatter",
    mode: s.points.length > 1 ? "lines" : "markers",
    name: s.name,
    x: s.points.map((p) => p.step),
    // NaN comes as null: a gap in the line
    y: s.points.map((p) => (p.value === null || p.value === undefined ? null : p.value)),
    line: { width: 1.5 },
    hovertemplate: "step %{x}<br>%{y}<extra>%{fullData.name}</extra>",
  }));
}

function layout(series, { range, title, ytitle }) {
  const xaxis = { title: { text: "step" }, zeroline: false };
  if (range && range[0] !== null && range[0] !== undefined && range[1] !== null && range[1] !== undefined) {
    xaxis.range = [Number(range[0]), Number(range[1])];
    xaxis.autorange = false;
  } else {
    xaxis.autorange = true;
  }
  return {
    title: title ? { text: title, font: { size: 14 } } : undefined,
    margin: { l: 56, r: 16, t: title ? 36 : 12, b: 44 },
    showlegend: series.length > 1 && series.length <= MAX_LEGEND,
    legend: { orientation: "h", y: -0.2 },
    xaxis,
    yaxis: { autorange: true, zeroline: false, title: ytitle ? { text: ytitle } : undefined },
    hovermode: "closest",
    uirevision: "keep", // the user's legend choices survive a redraw
  };
}

const CONFIG = {};

const drawn = new Set(); // plotted elements: purged once a page render has dropped them

function purgeDetached(Plotly) {
  for (const el of drawn) {
    if (!el.isConnected) {
      Plotly.purge(el); // its resize listener would otherwise keep it (and its data) alive
      drawn.delete(el);
    }
  }
}

/** Draw (or redraw) `series` as lines in `el`; resolves to `el` once drawn. */
export async function lineChart(el, series, { onzoom, range, title, ytitle } = {}) {
  const Plotly = await loadPlotly();
  purgeDetached(Plotly);
  drawn.add(el);
  el.classList.add("chart");
  if (!el.hasAttribute("role")) el.setAttribute("role", "figure");
  if (title && !el.hasAttribute("aria-label")) el.setAttribute("aria-label", `chart of ${title}`);
  el._shipyardZoom = onzoom || null;
  el._shipyardQuiet = true; // our own redraw is not a zoom
  try {
    await plot(el, traces(series), layout(series, { range, title, ytitle }), CONFIG);
  } finally {
    el._shipyardQuiet = false;
  }
  if (!el._shipyardListening) {
    el._shipyardListening = true;
    el.on("plotly_relayout", (ev) => zoomed(el, ev));
  }
  return el;
}

function zoomed(el, ev) {
  if (el._shipyardQuiet || !el._shipyardZoom || !ev) return;
  if (ev["xaxis.autorange"]) {
    el._shipyardZoom(null, null);
    return;
  }
  let lo = ev["xaxis.range[0]"];
  let hi = ev["xaxis.range[1]"];
  if (Array.isArray(ev["xaxis.range"])) [lo, hi] = ev["xaxis.range"];
  if (lo === undefined || hi === undefined) return; // a y-only zoom: nothing to ask again
  el._shipyardZoom(Math.floor(Number(lo)), Math.ceil(Number(hi)));
}

/** How many points each drawn series holds (what the tests and the page's caption read). */
export function drawnPoints(el) {
  return (el.data || []).map((t) => (t.x ? t.x.length : 0));
}
