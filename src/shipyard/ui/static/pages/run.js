// /ui/runs/<id>: one run — what it is, where its code came from, params, metrics with charts,
// datasets, artifacts with safe previews, and the model versions it registered. View state in
// the URL: ?metric=loss,acc (charted metrics) &min_step=7000&max_step=8000 (the charts' zoom)
// &artifact=plots/loss.png (the artifact previewed) &keys=lr (the params and metrics shown).
//
// Artifacts are untrusted: text goes in as text nodes (a YAML `!!js/function` stays text),
// images are <img> from a blob: URL, HTML only in an <iframe sandbox=""> (no scripts) from a
// blob: URL whose document also carries a CSP that loads nothing.
import { api, errorBox, fmtNum, fmtTime, h, link, loadPlotly, setQuery, uiUrl, useStyle } from "../app.js";
import { fetchSeries, lineChart } from "../charts.js";
import { renderArtifacts } from "../artifacts.js";

const AUTO_CHART = 5; // a run with this few metrics charts them all without being asked

export async function render({ main, params, query: q, signal }) {
  useStyle("run.css");
  loadPlotly().catch(() => {}); // parsing plotly.js is the slow part: start it with the fetches
  const runId = params[0];
  main.replaceChildren(h("h1", {}, "Run ", runId), h("p", { class: "muted" }, "Loading…"));
  const base = `/api/runs/${encodeURIComponent(runId)}`;
  let run, models;
  try {
    [run, models] = await Promise.all([
      api(base, { signal }),
      api(base + "/models", { signal }).catch((err) => (err.name === "AbortError" ? Promise.reject(err) : { versions: [], error: err })),
    ]);
  } catch (err) {
    if (err.status === 404 || err.status === 400) {
      main.replaceChildren(h("h1", {}, "Run ", runId), errorBox(err), h("p", {}, link("/runs", "All runs")));
      return;
    }
    throw err;
  }
  const charts = h("div", { class: "run-charts" });
  const artifacts = h("section", { "aria-labelledby": "run-artifacts" });
  const environment = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(
    heading(run),
    ...summary(run),
    keyFilter(q),
    h(
      "div",
      { class: "run-kv" },
      section("Parameters", "run-params", paramsTable(run)),
      section("Metrics", "run-metrics", metricsTable(run, q, charts)),
    ),
    section("Charts", "run-charts", charts),
    section("Datasets", "run-datasets", datasets(run)),
    section("Environment", "run-environment", environment),
    artifacts,
    section("Models", "run-models", modelsList(models)),
  );
  await Promise.all([
    drawCharts(charts, run, q, signal),
    renderArtifacts(artifacts, run, q, signal),
    showEnvironment(environment, base, signal),
  ]);
  if (run.status === "RUNNING") follow(main, base, charts, signal);
}

const LIVE_SECONDS = 5;

/** While the run is RUNNING, every few seconds: its status, latest values and charts (drawn
 * in place, the zoom kept); once it ends, the page is drawn whole once more. */
async function follow(main, base, charts, signal) {
  while (!signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, LIVE_SECONDS * 1000));
    if (signal.aborted) return;
    let run;
    try {
      run = await api(base, { signal });
    } catch {
      return; // gone or unreachable: the page stays as it is
    }
    if (run.status !== "RUNNING") {
      setQuery({}, { rerender: true });
      return;
    }
    for (const row of main.querySelectorAll("#run-metrics ~ * tr[data-key], .run-kv tr[data-key]")) {
      const cell = row.querySelector("td.num");
      if (cell && row.dataset.key in run.metrics) cell.textContent = fmtNum(run.metrics[row.dataset.key]);
    }
    await drawCharts(charts, run, new URLSearchParams(location.search), signal).catch(() => {});
  }
}

function heading(run) {
  return h(
    "h1",
    {},
    run.name || run.id,
    " ",
    h("span", { class: `pill status-${run.status}` }, run.status),
  );
}

function section(title, id, ...children) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function duration(run) {
  if (!run.end_time) return run.status === "RUNNING" ? "running" : "";
  const s = Math.round((run.end_time - run.start_time) / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function summary(run) {
  const q = new URLSearchParams({ experiment: run.experiment });
  const code = [];
  if (run.git_commit) {
    code.push(h("code", {}, run.git_commit.slice(0, 12)));
    if (run.git_dirty) code.push(" ", h("span", { class: "pill warn" }, "uncommitted changes"));
  }
  const rows = [
    ["Run id", h("code", {}, run.id)],
    ["Experiment", h("a", { href: uiUrl("/runs", q) }, run.experiment)],
    ["User", run.user],
    ["Started", fmtTime(run.start_time)],
    ["Ended", run.end_time ? fmtTime(run.end_time) : ""],
    ["Duration", duration(run)],
    ["Parent run", run.parent_run_id ? link(`/runs/${run.parent_run_id}`, run.parent_run_id.slice(0, 12)) : null],
    ["Source", run.source ? h("code", {}, run.source) : null],
    ["Git commit", code.length ? code : null],
    ["Environment", run.environment_digest ? h("code", { title: run.environment_digest }, "sha256:" + run.environment_digest.slice(0, 16)) : null],
  ];
  const tags = Object.entries(run.tags || {}).sort(([a], [b]) => a.localeCompare(b));
  if (tags.length) rows.push(["Tags", tags.map(([k, v]) => h("span", { class: "pill" }, `${k}=${v}`))]);
  const dl = h("dl", { class: "run-summary" });
  for (const [term, value] of rows) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(h("dt", {}, term), h("dd", {}, value));
  }
  const out = [dl];
  if (run.error) {
    out.push(h("h2", { id: "run-error" }, "Error"), h("pre", { class: "preview run-error", "aria-labelledby": "run-error" }, run.error));
  }
  return out;
}

/** A scrolling box a keyboard can reach (axe: scrollable-region-focusable). */
function scrollBox(label, table) {
  return h("div", { class: "kv-scroll", tabindex: "0", role: "region", "aria-label": label }, table);
}

function keyValueTable(label, entries, valueCell) {
  if (!entries.length) return h("p", { class: "muted" }, `No ${label.toLowerCase()}.`);
  return scrollBox(
    label,
    h(
      "table",
      { class: "plain kv" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "key"), h("th", { scope: "col" }, "value"))),
      h("tbody", {}, entries.map(([k, v]) => h("tr", { dataset: { key: k } }, h("th", { scope: "row" }, k), valueCell(v)))),
    ),
  );
}

/** Show only the params and metrics whose key holds the text (?keys=lr). */
function keyFilter(q) {
  const apply = (text) => {
    const needle = text.trim().toLowerCase();
    for (const tr of document.querySelectorAll(".run-kv tr[data-key]")) {
      tr.hidden = !!needle && !tr.dataset.key.toLowerCase().includes(needle);
    }
  };
  const input = h("input", {
    id: "run-key-filter",
    type: "search",
    value: q.get("keys") || "",
    placeholder: "e.g. lr",
    oninput: (ev) => {
      apply(ev.target.value);
      setQuery({ keys: ev.target.value.trim() || null }, { rerender: false });
    },
  });
  if (q.get("keys")) queueMicrotask(() => apply(q.get("keys")));
  return h("div", { class: "toolbar" }, h("label", { for: "run-key-filter" }, "Filter params and metrics "), input);
}

function paramsTable(run) {
  const entries = Object.entries(run.params || {}).sort(([a], [b]) => a.localeCompare(b));
  return keyValueTable("Parameters", entries, (v) => h("td", {}, v));
}

function chosenMetrics(run, q) {
  const keys = Object.keys(run.metrics || {});
  const asked = (q.get("metric") || "").split(",").filter(Boolean);
  if (asked.length) return asked;
  return keys.length <= AUTO_CHART ? keys.sort() : [];
}

function metricsTable(run, q, charts) {
  const keys = Object.keys(run.metrics || {}).sort();
  if (!keys.length) return h("p", { class: "muted" }, "No metrics.");
  const chosen = new Set(chosenMetrics(run, q));
  const toggle = (key, on) => {
    if (on) chosen.add(key);
    else chosen.delete(key);
    setQuery({ metric: [...chosen].join(",") || null }, { rerender: false });
    drawCharts(charts, run, new URLSearchParams(location.search), undefined);
  };
  const rows = keys.map((key) =>
    h(
      "tr",
      { dataset: { key } },
      h("th", { scope: "row" }, key),
      h("td", { class: "num" }, fmtNum(run.metrics[key])),
      h(
        "td",
        {},
        h("input", {
          type: "checkbox",
          checked: chosen.has(key),
          "aria-label": `chart ${key}`,
          onchange: (ev) => toggle(key, ev.target.checked),
        }),
      ),
    ),
  );
  return scrollBox(
    "Metrics (latest value)",
    h(
      "table",
      { class: "plain kv" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "metric"), h("th", { scope: "col" }, "latest"), h("th", { scope: "col" }, "chart"))),
      h("tbody", {}, rows),
    ),
  );
}

function stepRange(q) {
  const lo = q.get("min_step");
  const hi = q.get("max_step");
  const ok = (v) => v !== null && v !== "" && /^-?\d+$/.test(v);
  return ok(lo) && ok(hi) && Number(lo) <= Number(hi) ? [Number(lo), Number(hi)] : [null, null];
}

/** One chart per chosen metric, each downsampled by the server for the URL's step range. */
/** Python, platform and the installed distributions the run recorded. */
async function showEnvironment(el, base, signal) {
  let env;
  try {
    env = await api(base + "/environment", { signal });
  } catch (err) {
    if (err.name !== "AbortError") el.replaceChildren(errorBox(err));
    return;
  }
  if (!env.python) {
    el.replaceChildren(h("p", { class: "muted" }, "The run recorded no environment."));
    return;
  }
  const packages = Object.entries(env.packages);
  el.replaceChildren(
    h("p", {}, `Python ${env.python} (${env.implementation}) on ${env.platform}; ${packages.length} packages installed.`),
    h(
      "details",
      {},
      h("summary", {}, "Packages"),
      scrollBox(
        "Installed packages",
        h(
          "table",
          { class: "plain kv" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "package"), h("th", { scope: "col" }, "version"))),
          h("tbody", {}, packages.map(([name, version]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, version)))),
        ),
      ),
    ),
  );
}

async function drawCharts(container, run, q, signal) {
  const keys = chosenMetrics(run, q).filter((k) => k in (run.metrics || {}));
  const [lo, hi] = stepRange(q);
  const existing = new Map([...container.children].map((el) => [el.dataset.metric, el]));
  const figures = keys.map((key) => existing.get(key) || chartFigure(key));
  container.replaceChildren(...figures);
  if (!keys.length) {
    container.append(h("p", { class: "muted" }, "Tick a metric to chart its history."));
    return;
  }
  const onzoom = (min, max) => {
    setQuery({ min_step: min, max_step: max }, { rerender: false });
    const range = min === null ? [null, null] : [min, max];
    for (const fig of container.querySelectorAll("figure[data-metric]")) {
      drawOne(fig, run.id, fig.dataset.metric, range, onzoom).catch(() => {});
    }
  };
  await Promise.all(figures.map((fig) => drawOne(fig, run.id, fig.dataset.metric, [lo, hi], onzoom, signal)));
}

function chartFigure(key) {
  const plot = h("div", { class: "chart", "aria-label": `history of ${key}` });
  const caption = h("figcaption", { class: "muted" }, key);
  return h("figure", { class: "run-chart", dataset: { metric: key } }, plot, caption);
}

async function drawOne(fig, runId, key, [lo, hi], onzoom, signal) {
  const plot = fig.querySelector(".chart");
  const caption = fig.querySelector("figcaption");
  try {
    const s = await fetchSeries(runId, key, { minStep: lo, maxStep: hi, signal, name: key });
    await lineChart(plot, [s], { onzoom, range: lo === null ? null : [lo, hi], title: key });
    const drawn = s.points.length;
    caption.textContent = s.total
      ? `${key}: ${drawn} of ${s.total} points${s.downsampled ? " (min/max per bucket)" : ""}, steps ${s.min_step}–${s.max_step}`
      : `${key}: no points in this step range`;
  } catch (err) {
    if (err.name === "AbortError") return;
    fig.replaceChildren(errorBox(err));
  }
}

function datasets(run) {
  if (!run.datasets || !run.datasets.length) return h("p", { class: "muted" }, "No datasets.");
  return run.datasets.map((d) => {
    const cols = Object.entries(d.schema || {});
    const prof = (d.profile && d.profile.columns) || {};
    const rows = cols.map(([col, dtype]) => {
      const p = prof[col] || {};
      return h("tr", {}, h("th", { scope: "row" }, col), h("td", {}, dtype), h("td", {}, p.type || ""), h("td", { class: "num" }, fmtNum(p.missing)), h("td", {}, profileSummary(p)));
    });
    const id = `ds-${d.role}-${d.name}`.replace(/[^A-Za-z0-9_-]/g, "_");
    return h(
      "div",
      { class: "run-dataset" },
      h("h3", { id }, `${d.name} `, h("span", { class: "pill" }, d.role)),
      h("p", {}, `${fmtNum(d.rows)} rows, ${cols.length} columns · `, h("code", { title: d.digest }, "sha256:" + d.digest.slice(0, 16))),
      h(
        "table",
        { class: "plain", "aria-labelledby": id },
        h("thead", {}, h("tr", {}, ["column", "dtype", "kind", "missing", "profile"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows),
      ),
    );
  });
}

function profileSummary(p) {
  if (p.type === "numeric") {
    return `min ${fmtNum(p.min)} · mean ${fmtNum(p.mean)} · max ${fmtNum(p.max)} · std ${fmtNum(p.std)}`;
  }
  if (p.type === "categorical" && p.counts) {
    const top = Object.entries(p.counts).sort((a, b) => b[1] - a[1]).slice(0, 5);
    return `${fmtNum(p.distinct)} distinct; top: ` + top.map(([v, n]) => `${v} (${n})`).join(", ");
  }
  return "";
}

function modelsList(models) {
  if (models.error) return errorBox(models.error);
  const versions = models.versions || [];
  if (!versions.length) return h("p", { class: "muted" }, "This run registered no model.");
  return h(
    "ul",
    { class: "run-models" },
    versions.map((v) =>
      h(
        "li",
        {},
        link(`/models/${encodeURIComponent(v.name)}/versions/${v.version}`, `${v.name} v${v.version}`),
        ` · ${v.flavor} · ${v.approval}`,
        (v.aliases || []).map((a) => [" ", h("span", { class: "pill" }, "@" + a)]),
        ` · ${fmtTime(v.created_at)}`,
      ),
    ),
  );
}
