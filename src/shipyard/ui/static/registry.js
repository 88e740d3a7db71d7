// What the registry's pages (models, model, version) share: paths, state badges, plain
// tables, the audit log. Text always goes in as text (h), never as markup.
import { fmtTime, h, link, useStyle } from "./app.js";

export function useRegistryStyle() {
  useStyle("registry.css");
}

export function modelPath(name) {
  return `/models/${encodeURIComponent(name)}`;
}

export function versionPath(name, version) {
  return `${modelPath(name)}/versions/${encodeURIComponent(version)}`;
}

export function runPath(id) {
  return `/runs/${encodeURIComponent(id)}`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

/** A badge: `badge("approved", "approval")` → <span class="pill state-approved">approved</span>. */
export function badge(text, state) {
  return h("span", { class: `pill state-${state || text}` }, text);
}

export function approvalBadge(state) {
  return badge(state || "pending", state || "pending");
}

/** The latest gate result of a version: passed, failed, or a dash when its gates never ran. */
export function gateBadge(gate) {
  if (!gate) return h("span", { class: "muted", title: "no gate report" }, "—");
  return badge(gate.passed ? "passed" : "failed", gate.passed ? "passed" : "failed");
}

export function onnxBadge(status) {
  const state = { ok: "passed", refused: "failed", failed: "failed", pending: "pending" }[status];
  return badge(status || "off", state || "off");
}

/** A model's aliases ({alias: version}) as links to the versions they point at. */
export function aliasLinks(name, aliases) {
  const entries = Object.entries(aliases || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h("span", { class: "muted" }, "—");
  return entries.map(([alias, version], i) => [
    i ? ", " : "",
    link(versionPath(name, version), `@${alias} → v${version}`),
  ]);
}

/** A plain table: columns [{title, cell(row) → text|Node, num}], rows; `empty` when none. */
export function table(columns, rows, { caption, empty = "None.", cls = "" } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    { class: `plain ${cls}`.trim() },
    caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title)))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row)))),
      ),
    ),
  );
}

/** A section with its heading (h2) and an id to link to. */
export function section(id, title, ...children) {
  return h(
    "section",
    { id, "aria-labelledby": `${id}-h` },
    h("h2", { id: `${id}-h` }, title),
    ...children,
  );
}

/** key: value pairs as a description list; null values are left out. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]),
  );
}

function compact(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 300 ? text.slice(0, 300) + "…" : text;
}

/** The audit log (newest first): when, who, what, on what, why, and the change. */
export function auditTable(events, { caption = "Audit log" } = {}) {
  return table(
    [
      { title: "When (UTC)", cell: (e) => fmtTime(e.ts) },
      { title: "Who", cell: (e) => h("code", {}, e.actor) },
      { title: "Action", cell: (e) => e.action },
      { title: "Subject", cell: (e) => e.subject },
      { title: "Why", cell: (e) => e.reason || "" },
      {
        title: "Change",
        cell: (e) =>
          h(
            "span",
            { class: "change" },
            e.before !== null && e.before !== undefined ? compact(e.before) + " → " : "",
            compact(e.after),
          ),
      },
    ],
    events,
    { caption, empty: "No audit event.", cls: "audit" },
  );
}
