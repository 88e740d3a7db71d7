// /ui/models/<name>: a model's description, tags, versions (newest first), quality gates
// and audit log.   ?approval=pending   (only the versions in that approval state)
import { api, fmtTime, h, link, setQuery } from "../app.js";
import {
  aliasLinks,
  approvalBadge,
  auditTable,
  facts,
  gateBadge,
  onnxBadge,
  runPath,
  section,
  shortId,
  table,
  useRegistryStyle,
  versionPath,
} from "../registry.js";

const STATES = ["", "pending", "approved", "rejected"];

function versionColumns(name) {
  return [
    { title: "Version", cell: (v) => link(versionPath(name, v.version), `v${v.version}`) },
    { title: "Created (UTC)", cell: (v) => fmtTime(v.created_at) },
    { title: "By", cell: (v) => v.created_by },
    {
      title: "Source run",
      cell: (v) => (v.run_id ? link(runPath(v.run_id), shortId(v.run_id)) : sourceOf(v)),
    },
    { title: "Flavor", cell: (v) => v.flavor },
    { title: "ONNX", cell: (v) => onnxBadge(v.onnx_status) },
    { title: "Approval", cell: (v) => approvalBadge(v.approval) },
    { title: "Gates", cell: (v) => gateBadge(v.gate) },
    { title: "Aliases", cell: (v) => (v.aliases || []).map((a) => "@" + a).join(", ") },
    { title: "Description", cell: (v) => h("span", { class: "desc" }, v.description || "") },
  ];
}

function sourceOf(v) {
  const parent = (v.tags || {}).optimize_parent;
  if (parent) return ["optimized from ", link(versionPath(v.name, parent), `v${parent}`)];
  return h("span", { class: "muted" }, "—");
}

function gateText(gate) {
  const rest = Object.entries(gate)
    .filter(([k]) => k !== "kind")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
  return rest.join(", ");
}

function gatesSection(gates) {
  return section(
    "gates",
    "Quality gates",
    gates.length
      ? table(
          [
            { title: "Kind", cell: (g) => g.kind },
            { title: "Settings", cell: (g) => h("code", {}, gateText(g)) },
          ],
          gates,
          { caption: "Quality gates" },
        )
      : h(
          "p",
          { class: "muted" },
          "No quality gate: any version may get an alias (`shipyard gate set` adds some).",
        ),
  );
}

function approvalFilter(current) {
  return h(
    "div",
    { class: "toolbar" },
    h("label", { for: "approval-filter" }, "Approval "),
    h(
      "select",
      { id: "approval-filter", onchange: (ev) => setQuery({ approval: ev.target.value }) },
      STATES.map((s) => h("option", { value: s, selected: s === current }, s || "any")),
    ),
  );
}

export async function render({ main, params, query, signal }) {
  useRegistryStyle();
  const [name] = params;
  const base = `/api/models/${encodeURIComponent(name)}`;
  const [model, { gates }, { events }] = await Promise.all([
    api(`${base}?summary=1`, { signal }),
    api(`${base}/gates`, { signal }),
    api(`${base}/audit?limit=200`, { signal }),
  ]);
  const state = query.get("approval") || "";
  const versions = model.versions
    .filter((v) => !state || v.approval === state)
    .sort((a, b) => b.version - a.version);
  const latest = model.latest_version;
  const tags = Object.entries(model.tags || {}).sort(([a], [b]) => a.localeCompare(b));
  main.replaceChildren(
    h("p", { class: "muted" }, link("/models", "Models"), " / ", name),
    h("h1", {}, name),
    model.description ? h("p", { class: "description" }, model.description) : "",
    facts([
      ["Created (UTC)", fmtTime(model.created_at)],
      ["Updated (UTC)", fmtTime(model.updated_at)],
      ["Latest version", latest ? link(versionPath(name, latest), `v${latest}`) : "none"],
      ["Aliases", aliasLinks(name, model.aliases)],
      ["URI", h("code", {}, `models:/${name}@<alias>`)],
    ]),
    section(
      "tags",
      "Tags",
      table(
        [
          { title: "Key", cell: ([k]) => k },
          { title: "Value", cell: ([, v]) => v },
        ],
        tags,
        { caption: "Model tags", empty: "No tag." },
      ),
    ),
    section(
      "versions",
      `Versions (${model.versions.length})`,
      approvalFilter(state),
      table(versionColumns(name), versions, { caption: "Versions", empty: "No version." }),
    ),
    gatesSection(gates),
    section("audit", "Audit log", auditTable(events, { caption: `Audit log of ${name}` })),
  );
}
