// The compare page's plots: one metric's history per run overlaid (the server downsamples each
// series to ~500 points; zooming asks again for the steps in view), and parallel coordinates
// of the params that vary against that metric (Plotly's parcoords).
import { api, h, loadPlotly, plot } from "./app.js";
import { lineChart } from "./charts.js";

const CONCURRENCY = 6;
const MAX_POINTS = 500;
export const DEFAULT_AXES = 8;
export const MAX_AXES = 59; // Plotly's parcoords draws at most 60 dimensions, the metric is one
const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;
const CONFIG = {};

/** fn over items, at most `limit` at a time; results in the items' order. */
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The params drawn as axes: the URL's `pc` (those that vary, in its order), else the first
 * few that vary. */
export function pickParams(varying, pc) {
  if (pc === null || pc === undefined) return varying.slice(0, DEFAULT_AXES);
  const known = new Set(varying);
  return [...new Set(pc.split(",").map((s) => s.trim()))].filter((k) => known.has(k)).slice(0, MAX_AXES);
}

async function histories(runs, metric, signal, range) {
  const p = new URLSearchParams({ max_points: String(MAX_POINTS) });
  if (range) {
    p.set("min_step", String(Math.floor(range[0])));
    p.set("max_step", String(Math.ceil(range[1])));
  }
  return mapLimit(runs, CONCURRENCY, async (run) => {
    const url = `/api/runs/${encodeURIComponent(run.id)}/metrics/${encodeURIComponent(metric)}?${p}`;
    const { points } = await api(url, { signal });
    return { name: run.name || run.id.slice(0, 8), points };
  });
}

/** The chosen metric's history, one line per run that logged it. */
export async function drawMetric(el, note, runs, metric, signal) {
  const gen = String(Number(el.dataset.gen || 0) + 1);
  el.dataset.gen = gen;
  const having = runs.filter((r) => metric in (r.metrics || {}));
  note.textContent = `Loading ${metric} for ${having.length} runs…`;
  try {
    const series = await histories(having, metric, signal);
    if (signal.aborted || el.dataset.gen !== gen) return;
    const without = runs.length - having.length;
    note.textContent = `${metric}: ${having.length} runs` + (without ? ` (${without} did not log it)` : "") +
      ". Drag to zoom in; double-click to zoom out.";
    const onzoom = async (x0, x1) => {
      if (signal.aborted || el.dataset.gen !== gen) return;
      const range = x0 === null ? null : [x0, x1];
      const fresh = await histories(having, metric, signal, range);
      if (signal.aborted || el.dataset.gen !== gen) return;
      await lineChart(el, fresh, { onzoom, range, ytitle: metric });
    };
    await lineChart(el, series, { onzoom, ytitle: metric });
  } catch (err) {
    if (signal.aborted || (err && err.name === "AbortError")) return;
    note.replaceChildren(h("span", { class: "error", role: "alert" }, err.message || String(err)));
  }
}

/** One parcoords axis from a param's values: numeric when every run has a number, else
 * categorical (ticks at 0…k-1 naming the values; "(not set)" for runs without it). */
export function dimension(label, values) {
  if (values.every((v) => v !== undefined && v !== null && NUMBER.test(String(v)))) {
    return { label, values: values.map(Number) };
  }
  const names = values.map((v) => (v === undefined || v === null ? "(not set)" : String(v)));
  const cats = [...new Set(names)].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const index = new Map(cats.map((c, i) => [c, i]));
  return {
    label,
    values: names.map((n) => index.get(n)),
    tickvals: cats.map((_, i) => i),
    ticktext: cats.map((c) => (c.length > 16 ? c.slice(0, 15) + "…" : c)),
    range: [0, Math.max(1, cats.length - 1)],
  };
}

/** Parallel coordinates: the chosen params (rows of the diff table), then the metric, which
 * also colours the lines. Runs without the metric are left out (and counted). */
export async function drawParcoords(el, note, runs, paramRows, chosen, metric, signal) {
  const keep = runs.map((r, j) => j).filter((j) => Number.isFinite((runs[j].metrics || {})[metric]));
  const Plotly = await loadPlotly();
  if (signal.aborted) return;
  if (!paramRows.length || !chosen.length || keep.length < 2) {
    Plotly.purge(el);
    el.replaceChildren();
    note.textContent = !paramRows.length
      ? "No param varies across these runs."
      : !chosen.length
        ? "Pick the params to draw as axes."
        : `Fewer than 2 runs logged ${metric}.`;
    return;
  }
  const byKey = new Map(paramRows.map((r) => [r.key, r]));
  const color = keep.map((j) => runs[j].metrics[metric]);
  const dimensions = chosen.map((k) => dimension(k, keep.map((j) => byKey.get(k).values[j])));
  dimensions.push({ label: metric, values: color });
  const left = runs.length - keep.length;
  note.textContent = `${chosen.length} of ${paramRows.length} varying params against ${metric}` +
    (left ? `; ${left} runs without ${metric} left out` : "") + ". Drag along an axis to filter.";
  const trace = {
    type: "parcoords",
    dimensions,
    line: { color, colorscale: "Viridis", showscale: true, colorbar: { title: { text: metric } } },
  };
  await plot(el, [trace], { margin: { l: 70, r: 70, t: 60, b: 30 } }, CONFIG);
}
