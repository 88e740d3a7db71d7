// /ui/runs: the runs table. The server filters (the search_runs language), sorts and pages
// (keyset tokens); the grid keeps only what is in view in the DOM. Every choice — experiment,
// filter, time range, sort, columns, diff-only, group, selection — is in the URL.
//   ?experiment=E&filter=metrics.auc>0.9&since=7d&sort=metrics.auc DESC&diff=1
//   &cols=metrics.auc,params.lr&allparams=1&group=params.model&sel=id1,id2
import { api, errorBox, fmtNum, fmtTime, h, link, setQuery, uiUrl } from "../app.js";
import { Grid } from "../grid.js";

const PAGE = 100;
const MAX_KEYS = 300;
const MAX_COMPARE = 100;
const SINCE = { "": "any time", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days" };
const SECONDS = { h: 3600, d: 86400 };

function fullFilter(q) {
  const parts = [];
  const filter = (q.get("filter") || "").trim();
  if (filter) parts.push(filter);
  const since = q.get("since") || "";
  const m = since.match(/^(\d+)([hd])$/);
  if (m) parts.push(`attributes.start_time >= ${Date.now() - m[1] * SECONDS[m[2]] * 1000}`);
  return parts.join(" and ");
}

function baseParams(q) {
  const p = new URLSearchParams();
  const filter = fullFilter(q);
  if (filter) p.set("filter", filter);
  for (const e of q.getAll("experiment")) p.append("experiment", e);
  return p;
}

function explicitColumns(q) {
  return (q.get("cols") || "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** The rows' request asks for the chosen columns only, or the first MAX_KEYS keys of each
 * kind: a page of runs with thousands of params stays small. */
function withKeys(params, q) {
  const explicit = explicitColumns(q).filter((c) => /^(params|metrics|tags)\./.test(c));
  if (explicit.length) for (const c of explicit) params.append("keys", c);
  else params.set("max_keys", MAX_KEYS);
  return params;
}

function chooseColumns(q, summary, loaded) {
  const diff = q.get("diff") === "1";
  const explicit = explicitColumns(q);
  if (explicit.length) return explicit;
  // past MAX_KEYS keys of a kind, the rows hold the first ones only: offer those
  const offered = (items, kind) =>
    items.length > MAX_KEYS ? items.filter((i) => loaded[kind].has(i.key)) : items;
  const out = [];
  for (const m of offered(summary.metrics, "metrics")) if (!diff || m.varies) out.push("metrics." + m.key);
  const allParams = q.get("allparams") === "1" && !diff;
  for (const p of offered(summary.params, "params")) if (allParams || p.varies) out.push("params." + p.key);
  return out;
}

function column(spec, sort) {
  const dot = spec.indexOf(".");
  const kind = spec.slice(0, dot);
  const key = spec.slice(dot + 1);
  const [sortKey, sortDir] = sort.split(/\s+(?=ASC$|DESC$)/i);
  const active = sortKey === spec ? ((sortDir || "ASC").toUpperCase() === "DESC" ? "desc" : "asc") : null;
  return {
    key: spec,
    title: kind === "metrics" ? key : kind === "params" ? `${key} (param)` : spec,
    num: kind === "metrics",
    sort: active,
    cell: (run) => {
      const bag = run[kind] || {};
      return kind === "metrics" ? fmtNum(bag[key]) : bag[key];
    },
    onsort: (col) => {
      const next = col.sort === "desc" ? `${spec} ASC` : col.sort === "asc" ? "" : `${spec} DESC`;
      setQuery({ sort: next });
    },
  };
}

const ATTRS = [
  ["attributes.start_time", "started", (r) => fmtTime(r.start_time).slice(5)],
  ["attributes.status", "status", (r) => h("span", { class: "status-" + r.status }, r.status)],
  ["attributes.experiment", "experiment", (r) => r.experiment],
  ["attributes.user", "user", (r) => r.user],
];

export async function render({ main, query: q, signal }) {
  const base = baseParams(q);
  const sort = q.get("sort") || "";
  const first = withKeys(new URLSearchParams(base), q);
  first.set("limit", PAGE);
  if (sort) first.set("order_by", sort);
  const toolbar = renderToolbar(q);
  const title = h("h1", {}, "Runs", q.getAll("experiment").length ? ` — ${q.getAll("experiment").join(", ")}` : "");
  main.replaceChildren(title, toolbar, h("p", { class: "muted" }, "Loading…"));
  // the first rows are drawn as soon as they arrive; the summary of every matching run
  // (its count, the columns that vary) follows and completes the view
  const summaryP = api("/api/runs/columns?" + base, { signal });
  summaryP.catch(() => {}); // handled below; never an unhandled rejection
  let page;
  try {
    page = await api("/api/runs?" + first, { signal });
  } catch (err) {
    if (err.status >= 400 && err.status < 500) {
      main.replaceChildren(title, toolbar, errorBox(err));
      return;
    }
    throw err;
  }
  const view = new RunsView(q, base, sort, page, signal);
  main.replaceChildren(title, toolbar, view.status, view.grouped, view.grid.el);
  view.grid.draw();
  try {
    view.complete(await summaryP);
  } catch (err) {
    if (signal.aborted) return;
    view.status.replaceChildren(errorBox(err));
  }
  if (q.get("group")) view.grouped.replaceChildren(await groups(q, base, signal));
}

class RunsView {
  constructor(q, base, sort, page, signal) {
    this.q = q;
    this.base = base;
    this.sort = sort;
    this.signal = signal;
    this.runs = page.runs;
    this.next = page.next_page_token;
    this.loading = false;
    this.selected = new Set((q.get("sel") || "").split(",").filter(Boolean));
    this.compare = h("button", { type: "button", onclick: () => openCompare(this.selected) });
    this.count = h("span", { id: "run-count", "aria-live": "polite" }, "counting runs…");
    this.status = h("p", { class: "toolbar" }, this.count, this.compare);
    this.grouped = h("div", {});
    this.updateCompare();
    const provisional = summarize(this.runs);
    this.grid = new Grid({
      label: "Runs",
      rowCount: this.runs.length + (this.next ? 1 : 0),
      columns: this.columns(provisional),
      fixed: { title: "run", width: 260, cell: (run) => this.fixedCell(run) },
      row: (i) => this.runs[i],
      onrange: (_first, last) => this.more(last),
    });
    signal.addEventListener("abort", () => this.grid.destroy());
  }

  columns(summary) {
    return [
      ...ATTRS.map(([spec, title, cell]) => ({ ...column(spec, this.sort), title, cell, num: false })),
      ...chooseColumns(this.q, summary, this.loadedKeys()).map((spec) => column(spec, this.sort)),
    ];
  }

  loadedKeys() {
    const found = { params: new Set(), metrics: new Set() };
    for (const run of this.runs) {
      for (const key of Object.keys(run.params)) found.params.add(key);
      for (const key of Object.keys(run.metrics)) found.metrics.add(key);
    }
    return found;
  }

  complete(summary) {
    if (summary.runs === 0 && this.q.getAll("experiment").length) {
      this.unknownExperiments(this.q.getAll("experiment"));
    }
    const columns = this.columns(summary);
    const shown = columns.filter((c) => c.key.startsWith("params.")).length;
    const wide = summary.params.length > MAX_KEYS || summary.metrics.length > MAX_KEYS;
    const hidden = summary.params.filter((p) => !p.varies).length;
    this.count.textContent =
      `${summary.runs.toLocaleString("en-US")} runs · ${columns.length - ATTRS.length} columns` +
      (wide
        ? ` (of ${summary.params.length.toLocaleString("en-US")} params and ` +
          `${summary.metrics.length.toLocaleString("en-US")} metrics, the first ${MAX_KEYS} of each by name: name others in "columns")`
        : hidden > 0 && shown < summary.params.length
          ? ` (${hidden} params the same everywhere hidden)`
          : "");
    this.grid.setRowCount(summary.runs);
    this.grid.setColumns(columns);
    this.grid.el.dataset.complete = "1";
  }

  /** No run matched: say when it is because no such experiment exists. */
  async unknownExperiments(names) {
    const { experiments } = await api("/api/experiments", { signal: this.signal });
    const missing = names.filter((n) => !experiments.includes(n));
    if (missing.length) {
      this.count.replaceChildren(
        h("span", { class: "error", role: "alert" },
          `No experiment named ${missing.map((n) => `"${n}"`).join(", ")}. `),
        link("/experiments", "See the experiments"),
      );
    }
  }

  fixedCell(run) {
    return [
      h("input", {
        type: "checkbox",
        "aria-label": `select ${run.name || run.id}`,
        checked: this.selected.has(run.id),
        onchange: (ev) => {
          if (ev.target.checked) this.selected.add(run.id);
          else this.selected.delete(run.id);
          setQuery({ sel: [...this.selected].join(",") }, { rerender: false });
          this.updateCompare();
        },
      }),
      " ",
      link(`/runs/${encodeURIComponent(run.id)}`, run.name || run.id.slice(0, 8)),
    ];
  }

  updateCompare() {
    const n = this.selected.size;
    this.compare.textContent = `Compare ${n} run${n === 1 ? "" : "s"}`;
    this.compare.disabled = n < 2 || n > MAX_COMPARE;
  }

  async more(last) {
    if (this.loading || !this.next || last < this.runs.length - 20) return;
    this.loading = true;
    try {
      const p = withKeys(new URLSearchParams(this.base), this.q);
      p.set("limit", PAGE);
      if (this.sort) p.set("order_by", this.sort);
      p.set("page_token", this.next);
      const more = await api("/api/runs?" + p, { signal: this.signal });
      this.runs.push(...more.runs);
      this.next = more.next_page_token;
      if (!this.grid.el.dataset.complete || !this.next) {
        this.grid.setRowCount(this.runs.length + (this.next ? 1 : 0));
      }
      this.grid.schedule();
    } catch (err) {
      if (!this.signal.aborted) this.count.replaceChildren(errorBox(err));
    } finally {
      this.loading = false;
    }
  }
}

/** What the loaded runs alone say about the columns, until the server's summary arrives. */
function summarize(runs) {
  const params = new Map();
  const metrics = new Set();
  for (const run of runs) {
    for (const [key, value] of Object.entries(run.params)) {
      if (!params.has(key)) params.set(key, new Set());
      params.get(key).add(value);
    }
    for (const key of Object.keys(run.metrics)) metrics.add(key);
  }
  return {
    runs: runs.length,
    params: [...params].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([key, values]) => ({ key, varies: values.size > 1 })),
    metrics: [...metrics].sort().map((key) => ({ key, varies: true })),
  };
}

function renderToolbar(q) {
  const filter = h("input", {
    type: "search",
    id: "filter",
    value: q.get("filter") || "",
    placeholder: "metrics.auc > 0.9 and params.model = 'rf'",
    "aria-label": "Filter runs",
  });
  const cols = h("input", {
    type: "text",
    id: "cols",
    value: q.get("cols") || "",
    placeholder: "columns: metrics.auc, params.lr (empty: the ones that vary)",
    "aria-label": "Columns",
  });
  const group = h("input", { type: "text", id: "group", value: q.get("group") || "", placeholder: "group by: params.model", "aria-label": "Group by", size: 18 });
  const since = h("select", { id: "since", "aria-label": "Time range", onchange: (ev) => setQuery({ since: ev.target.value }) },
    Object.entries(SINCE).map(([value, text]) => h("option", { value, selected: (q.get("since") || "") === value }, text)));
  const check = (key, text) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", id: key, checked: q.get(key) === "1", onchange: (ev) => setQuery({ [key]: ev.target.checked }) }), text);
  return h(
    "form",
    {
      class: "toolbar",
      role: "search",
      onsubmit: (ev) => {
        ev.preventDefault();
        setQuery({ filter: filter.value.trim(), cols: cols.value.replace(/\s+/g, ""), group: group.value.trim() }, { push: true });
      },
    },
    filter, cols, group, since,
    h("button", { type: "submit" }, "Apply"),
    check("diff", "diff only"),
    check("allparams", "all params"),
  );
}

async function groups(q, base, signal) {
  const p = new URLSearchParams(base);
  p.set("by", q.get("group"));
  const sortKey = (q.get("sort") || "").split(/\s+/)[0];
  if (sortKey.startsWith("metrics.")) p.set("metric", sortKey);
  let found;
  try {
    found = await api("/api/runs/groups?" + p, { signal });
  } catch (err) {
    if (err.status >= 400 && err.status < 500) return errorBox(err);
    throw err;
  }
  const by = q.get("group");
  const rows = found.groups.map((g) => {
    const filter = [q.get("filter"), g.value === null ? null : `${by} = '${String(g.value).replace(/'/g, "\\'")}'`].filter(Boolean).join(" and ");
    return h("tr", {},
      h("td", {}, g.value === null ? h("span", { class: "muted" }, "(not set)") : h("a", { href: uiUrl("/runs", { ...Object.fromEntries(q), filter, group: "" }) }, g.value)),
      h("td", { class: "num" }, g.runs),
      found.metric ? [h("td", {}, fmtNum(g.min)), h("td", {}, fmtNum(g.mean)), h("td", {}, fmtNum(g.max))] : null);
  });
  return h("table", { class: "plain groups" },
    h("caption", { class: "muted" }, `${found.groups.length} groups by ${by}`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, by), h("th", { scope: "col" }, "runs"),
      found.metric ? ["min", "mean", "max"].map((s) => h("th", { scope: "col" }, `${s} ${found.metric}`)) : null)),
    h("tbody", {}, rows));
}

function openCompare(selected) {
  const url = uiUrl("/compare", { runs: [...selected].join(",") });
  history.pushState(null, "", url);
  dispatchEvent(new PopStateEvent("popstate"));
}
