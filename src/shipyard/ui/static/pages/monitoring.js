// /ui/monitoring: every endpoint's monitoring as the server last evaluated it — rows in the
// window, drifted features, data-quality violations, live accuracy — and its alert rules.
import { api, fmtNum, fmtTime, h, link, useStyle } from "../app.js";

export async function render({ main, signal }) {
  useStyle("deploy.css");
  const doc = await api("/api/monitoring", { signal });
  const every = doc.interval_seconds > 0 ? `every ${fmtNum(doc.interval_seconds)} s` : "on request";
  main.replaceChildren(
    h("h1", {}, "Monitoring"),
    h(
      "p",
      { class: "muted" },
      `The server evaluates each endpoint ${every} over the last ${duration(doc.window_seconds)}: ` +
        "drift against the training data, data quality, and accuracy from the labels sent back.",
    ),
    doc.endpoints.length
      ? table(doc.endpoints)
      : h("p", { class: "muted" }, "No endpoint to monitor yet."),
  );
}

export function duration(seconds) {
  if (!seconds) return "";
  for (const [unit, s] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds >= s && seconds % s === 0) return `${seconds / s} ${unit}`;
  }
  return `${fmtNum(seconds)} s`;
}

function table(endpoints) {
  const head = ["Endpoint", "Version", "Evaluated", "Rows", "Drift", "Quality violations", "Accuracy", "Alerts"];
  return h(
    "table",
    { class: "plain", id: "monitoring" },
    h("caption", { class: "sr-only" }, "Endpoints and their latest monitoring"),
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, endpoints.map(row)),
  );
}

function row(e) {
  const l = e.latest;
  const cells = !l
    ? [h("td", { colspan: 6, class: "muted" }, "not evaluated yet (opening it evaluates it)")]
    : l.error
      ? [h("td", {}, l.model_version ?? ""), h("td", {}, fmtTime(l.at_ms)), h("td", { colspan: 4, class: "muted" }, l.error)]
      : [
          h("td", {}, `v${l.model_version}`),
          h("td", {}, fmtTime(l.at_ms)),
          h("td", { class: "num" }, fmtNum(l.rows)),
          h("td", { class: l.drifted_columns.length ? "bad" : "good" }, driftText(l)),
          h("td", { class: "num" + (l.quality_violations ? " bad" : "") }, fmtNum(l.quality_violations)),
          h("td", {}, accuracyText(l.accuracy)),
        ];
  return h(
    "tr",
    { dataset: { endpoint: e.endpoint } },
    h("td", {}, link(`/monitoring/${encodeURIComponent(e.endpoint)}`, e.endpoint)),
    cells,
    h("td", {}, alertsCell(e)),
  );
}

function driftText(l) {
  const cols = l.drifted_columns || [];
  if (!cols.length) return "none";
  const shown = cols.slice(0, 3).join(", ") + (cols.length > 3 ? ` +${cols.length - 3}` : "");
  return `${fmtNum(Math.round(l.share_drifted * 1000) / 10)} % drifted: ${shown}`;
}

export function accuracyText(overall) {
  if (!overall) return h("span", { class: "muted" }, "no labels");
  const parts = ["accuracy", "f1", "auc", "mae", "rmse"]
    .filter((k) => overall[k] !== null && overall[k] !== undefined)
    .map((k) => `${k} ${fmtNum(Math.round(overall[k] * 1000) / 1000)}`);
  return parts.join(", ") || h("span", { class: "muted" }, "not computable");
}

function alertsCell(e) {
  if (!e.alerts.length) return h("span", { class: "muted" }, "no rule");
  return h(
    "ul",
    { class: "bare" },
    e.alerts.map((r) => h("li", {}, h("span", { class: "state-" + r.state }, r.state), ` ${r.name}: ${r.condition}`)),
  );
}
