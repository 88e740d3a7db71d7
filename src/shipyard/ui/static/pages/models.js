// /ui/models: every registered model with its latest version, aliases and approvals.
//   ?q=churn   (models whose name, description or tags hold the text)
import { api, fmtTime, h, link, setQuery } from "../app.js";
import {
  aliasLinks,
  approvalBadge,
  modelPath,
  onnxBadge,
  runPath,
  shortId,
  table,
  useRegistryStyle,
  versionPath,
} from "../registry.js";

function matches(model, text) {
  if (!text) return true;
  const hay = [model.name, model.description, ...Object.entries(model.tags || {}).flat()];
  return hay.join("\n").toLowerCase().includes(text.toLowerCase());
}

function approvals(counts) {
  const order = ["approved", "pending", "rejected"];
  const parts = order.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  return parts.length ? parts.join(" · ") : "—";
}

function latestCell(model, pick) {
  return model.latest ? pick(model.latest) : h("span", { class: "muted" }, "—");
}

const COLUMNS = [
  { title: "Model", cell: (m) => link(modelPath(m.name), m.name) },
  {
    title: "Latest version",
    cell: (m) => latestCell(m, (v) => link(versionPath(m.name, v.version), `v${v.version}`)),
  },
  { title: "Created (UTC)", cell: (m) => latestCell(m, (v) => fmtTime(v.created_at)) },
  { title: "Flavor", cell: (m) => latestCell(m, (v) => v.flavor) },
  { title: "ONNX", cell: (m) => latestCell(m, (v) => onnxBadge(v.onnx_status)) },
  { title: "Latest approval", cell: (m) => latestCell(m, (v) => approvalBadge(v.approval)) },
  { title: "All versions", cell: (m) => approvals(m.approvals || {}) },
  { title: "Aliases", cell: (m) => aliasLinks(m.name, m.aliases) },
  {
    title: "Source run",
    cell: (m) =>
      latestCell(m, (v) => (v.run_id ? link(runPath(v.run_id), shortId(v.run_id)) : "—")),
  },
  { title: "Description", cell: (m) => h("span", { class: "desc" }, m.description || "") },
];

export async function render({ main, query, signal }) {
  useRegistryStyle();
  const { models } = await api("/api/models?summary=1", { signal });
  const text = query.get("q") || "";
  const shown = models.filter((m) => matches(m, text));
  const search = h("input", {
    id: "model-search",
    type: "search",
    value: text,
    placeholder: "name, description or tag",
    onchange: (ev) => setQuery({ q: ev.target.value.trim() }),
    onsearch: (ev) => setQuery({ q: ev.target.value.trim() }),
  });
  main.replaceChildren(
    h("h1", {}, "Models"),
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "model-search" }, "Filter "),
      search,
      h("span", { class: "muted", "aria-live": "polite" }, `${shown.length} of ${models.length}`),
    ),
    models.length
      ? table(COLUMNS, shown, { caption: "Registered models", empty: "No model matches." })
      : h(
          "p",
          { class: "muted" },
          "No registered model yet: `run.log_model(model, name=…)` registers one.",
        ),
  );
}
