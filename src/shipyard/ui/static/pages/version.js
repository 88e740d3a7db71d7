// /ui/models/<name>/versions/<n>: everything about one version — what it is (flavor,
// signature, environment lock, ONNX), where it comes from and goes (lineage: datasets → run →
// version → endpoints; the version it was optimized from), its gate reports, its review
// (approve / reject) and aliases, and its audit events.
import { api, errorBox, fmtNum, fmtTime, h, link, whoami } from "../app.js";
import {
  approvalBadge,
  auditTable,
  badge,
  facts,
  modelPath,
  onnxBadge,
  runPath,
  section,
  shortId,
  table,
  useRegistryStyle,
  versionPath,
} from "../registry.js";
import { aliasSection, reviewSection } from "../registry_forms.js";

// tags shown in their own sections, not in the tags table
const OWN_TAGS = new Set(["approval_reviewer", "approval_comment", "optimize_report"]);

function node(title, current, ...children) {
  return h("div", { class: current ? "node current" : "node" }, h("h3", {}, title), ...children);
}

const arrow = () => h("span", { class: "arrow", "aria-hidden": "true" }, "→");
const muted = (text) => h("p", { class: "muted" }, text);

function runNode(lin) {
  const run = lin.run;
  if (!run) return node("Run", false, muted("Not logged from a run."));
  const title = lin.run_via === "parent" ? "Run (the parent version's)" : "Run";
  if (run.missing) return node(title, false, h("p", {}, `run ${shortId(run.id)} (deleted)`));
  const commit = run.git_commit
    ? `commit ${run.git_commit.slice(0, 10)}${run.git_dirty ? " (dirty)" : ""}`
    : null;
  return node(
    title,
    false,
    h("p", {}, link(runPath(run.id), `run ${run.name || shortId(run.id)}`)),
    muted(`${run.experiment} · ${run.status} · ${fmtTime(run.start_time)}`),
    commit ? muted(commit) : null,
  );
}

function datasetsNode(lin) {
  const item = (d) =>
    h(
      "li",
      {},
      `${d.name} (${d.role}) · ${fmtNum(d.rows)} rows · `,
      h("code", { title: d.digest }, shortId(d.digest)),
    );
  const list = lin.datasets.length ? h("ul", {}, lin.datasets.map(item)) : muted("None logged.");
  return node("Datasets", false, list);
}

function endpointsNode(lin) {
  const item = (e) =>
    h(
      "li",
      {},
      link(`/deployments/${encodeURIComponent(e.name)}`, e.name),
      ` — ${e.roles.join(", ")} (${e.policy})`,
    );
  const list = lin.endpoints.length
    ? h("ul", {}, lin.endpoints.map(item))
    : muted("No endpoint serves it.");
  return node("Endpoints", false, list);
}

function family(v, lin) {
  const out = [];
  const p = lin.parent;
  if (p) {
    const to = p.exists ? link(versionPath(v.name, p.version), `v${p.version}`) : `v${p.version}`;
    out.push(
      h(
        "p",
        { id: "optimized-from" },
        "Optimized from ",
        to,
        p.exists ? "" : " (deleted)",
        p.technique ? ` by ${p.technique}` : "",
        ".",
      ),
    );
  }
  if (lin.children.length) {
    const each = (c, i) => [
      i ? ", " : "",
      link(versionPath(v.name, c.version), `v${c.version}`),
      c.technique ? ` (${c.technique})` : "",
    ];
    out.push(h("p", { id: "optimized-into" }, "Optimized into: ", lin.children.map(each), "."));
  }
  return out;
}

function lineageSection(v, lin) {
  const here = h("p", {}, `${v.name} v${v.version} `, approvalBadge(v.approval));
  return section(
    "lineage",
    "Lineage",
    h(
      "div",
      { class: "lineage" },
      datasetsNode(lin),
      arrow(),
      runNode(lin),
      arrow(),
      node("Version", true, here),
      arrow(),
      endpointsNode(lin),
    ),
    family(v, lin),
  );
}

/** What `models optimize` measured: the parent (old) and this version (new), side by side. */
function optimizeSection(v) {
  const raw = (v.tags || {}).optimize_report;
  if (!raw) return null;
  let report;
  try {
    report = JSON.parse(raw);
  } catch {
    return section("optimization", "Optimization", h("pre", { class: "json" }, raw));
  }
  const m = report.metrics || {};
  const row = (k) => [k, m.old[k], (m.new || {})[k], (m.delta || {})[k]];
  const rows = Object.keys(m.old || {}).map(row);
  const lat = report.latency_p50_ms_per_row || {};
  const size = report.size_bytes || {};
  rows.push(["latency p50 (ms/row)", lat.old, lat.new, null]);
  rows.push(["size (bytes)", size.old, size.new, null]);
  const held = report.held_out || {};
  return section(
    "optimization",
    `Optimization: ${report.technique || "?"} of ${report.parent || "?"}`,
    held.source ? muted(`Measured on ${fmtNum(held.rows)} held-out rows (${held.source}).`) : null,
    table(
      [
        { title: "Measure", cell: (r) => r[0] },
        { title: "Parent", cell: (r) => fmtNum(r[1]), num: true },
        { title: "This version", cell: (r) => fmtNum(r[2]), num: true },
        { title: "Change", cell: (r) => fmtNum(r[3]), num: true },
      ],
      rows,
      { caption: "Parent and optimized version" },
    ),
  );
}

function gateReport(r) {
  const rep = r.report || {};
  const line = [
    badge(r.passed ? "passed" : "failed"),
    ` ${fmtTime(r.created_at)} by ${r.created_by}`,
    rep.rows ? ` · ${fmtNum(rep.rows)} rows` : "",
    rep.champion ? ` · against v${rep.champion}` : "",
  ];
  return [
    h("p", {}, line),
    table(
      [
        { title: "Gate", cell: (g) => g.name },
        { title: "Kind", cell: (g) => g.kind },
        { title: "Result", cell: (g) => badge(g.passed ? "passed" : "failed") },
        { title: "Value", cell: (g) => fmtNum(g.value), num: true },
        { title: "Threshold", cell: (g) => fmtNum(g.threshold), num: true },
        { title: "Detail", cell: (g) => g.detail || "" },
      ],
      rep.gates || [],
      { caption: "Gate results", empty: "No gate in this report." },
    ),
    metricsTable(rep.metrics || {}),
  ];
}

/** The report's metrics: one row per metric, one column per model measured (candidate,
 * champion@alias). */
function metricsTable(metrics) {
  const models = Object.keys(metrics);
  const names = [...new Set(models.flatMap((m) => Object.keys(metrics[m] || {})))].sort();
  const col = (m) => ({ title: m, cell: (n) => fmtNum((metrics[m] || {})[n]), num: true });
  return table([{ title: "Metric", cell: (n) => n }, ...models.map(col)], names, {
    caption: "Metrics measured",
    empty: "",
  });
}

function gatesSection(reports) {
  if (!reports.length) {
    const none = "No gate report: `shipyard gate check` runs the model's gates on a version.";
    return section("gate-reports", "Gate reports", muted(none));
  }
  const [latest, ...older] = reports;
  const earlier = (r) =>
    h(
      "details",
      {},
      h("summary", {}, `${r.passed ? "passed" : "failed"} · ${fmtTime(r.created_at)}`),
      gateReport(r),
    );
  return section("gate-reports", "Gate reports", gateReport(latest), older.map(earlier));
}

function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function signatureSection(sig) {
  if (!sig) return section("signature", "Signature", muted("No signature."));
  const inputs = sig.inputs || [];
  const keys = [...new Set(inputs.flatMap((i) => Object.keys(i)))];
  const cols = keys.map((k) => ({ title: k, cell: (i) => text(i[k]) }));
  const rest = Object.fromEntries(Object.entries(sig).filter(([k]) => k !== "inputs"));
  return section(
    "signature",
    `Signature (${sig.kind || "?"}, ${inputs.length} inputs)`,
    h(
      "details",
      { open: inputs.length <= 20 },
      h("summary", {}, `${inputs.length} inputs`),
      table(cols, inputs, { caption: "Inputs", empty: "No input." }),
    ),
    Object.keys(rest).length > 1 ? h("pre", { class: "json" }, JSON.stringify(rest, null, 2)) : "",
  );
}

function differences(env) {
  if (!env.differences.length) return muted("This server has the locked versions.");
  const level = (d) => (d.refuses ? badge(d.level, "failed") : d.level);
  return table(
    [
      { title: "Package", cell: (d) => d.package },
      { title: "Locked", cell: (d) => d.wanted },
      { title: "This server", cell: (d) => d.installed || "not installed" },
      { title: "Difference", cell: level },
    ],
    env.differences,
    { caption: "Differences from this server" },
  );
}

function environmentSection(env) {
  if (env instanceof Error) return section("environment", "Environment lock", errorBox(env));
  const pkgs = Object.entries(env.packages || {});
  const cols = [
    { title: "Package", cell: ([p]) => p },
    { title: "Version", cell: ([, n]) => n },
  ];
  return section(
    "environment",
    "Environment lock",
    facts([
      ["Python", env.python],
      ["shipyard", env.shipyard],
      ["Framework", (env.framework || []).join(", ")],
      ["Declared", (env.declared || []).join(", ")],
    ]),
    differences(env),
    h(
      "details",
      {},
      h("summary", {}, `${pkgs.length} locked packages`),
      table(cols, pkgs, { caption: "Locked packages" }),
    ),
  );
}

function summary(v) {
  return facts([
    ["URI", h("code", {}, `models:/${v.name}/${v.version}`)],
    ["Created (UTC)", fmtTime(v.created_at)],
    ["Created by", v.created_by],
    ["Flavor", v.flavor],
    ["Artifact", h("code", {}, v.artifact_digest)],
    ["ONNX", [onnxBadge(v.onnx_status), v.onnx_detail ? ` ${v.onnx_detail}` : ""]],
    ["ONNX artifact", v.onnx_digest ? h("code", {}, v.onnx_digest) : null],
    ["Description", v.description || null],
  ]);
}

function tagsSection(v) {
  const rows = Object.entries(v.tags || {})
    .filter(([k]) => !OWN_TAGS.has(k))
    .sort(([a], [b]) => a.localeCompare(b));
  const cols = [
    { title: "Key", cell: ([k]) => k },
    { title: "Value", cell: ([, x]) => x },
  ];
  return section("tags", "Tags", table(cols, rows, { caption: "Version tags", empty: "No tag." }));
}

/** The model's audit events about this version: its own, and alias moves to or from it. */
function mine(v) {
  const subject = `${v.name}/${v.version}`;
  const about = (x) => x && typeof x === "object" && x.version === v.version;
  return (e) =>
    e.subject === subject || (e.subject === v.name && (about(e.after) || about(e.before)));
}

/** The environment is shown when it can be read; its failure leaves the rest of the page. */
function orError(promise) {
  return promise.catch((err) => (err.name === "AbortError" ? Promise.reject(err) : err));
}

export async function render({ main, params, signal }) {
  useRegistryStyle();
  const [name, number] = params;
  const base = `/api/models/${encodeURIComponent(name)}`;
  const vbase = `${base}/versions/${encodeURIComponent(number)}`;
  const [v, lin, { reports }, model, { events }, env, who] = await Promise.all([
    api(vbase, { signal }),
    api(`${vbase}/lineage`, { signal }),
    api(`${vbase}/gate-reports`, { signal }),
    api(base, { signal }),
    api(`${base}/audit?limit=1000`, { signal }),
    orError(api(`${vbase}/environment`, { signal })),
    whoami(),
  ]);
  const trail = [link("/models", "Models"), " / ", link(modelPath(name), name), ` / v${v.version}`];
  const audit = auditTable(events.filter(mine(v)), { caption: `Audit of ${name} v${v.version}` });
  const parts = [
    h("p", { class: "muted" }, trail),
    h("h1", {}, `${name} v${v.version} `, approvalBadge(v.approval)),
    summary(v),
    lineageSection(v, lin),
    h("div", { class: "cols-2" }, reviewSection(v, who), aliasSection(v, model.aliases, who)),
    optimizeSection(v),
    gatesSection(reports),
    signatureSection(v.signature),
    environmentSection(env),
    tagsSection(v),
    section("audit", "Audit events", audit),
  ];
  main.replaceChildren(...parts.filter(Boolean));
}
