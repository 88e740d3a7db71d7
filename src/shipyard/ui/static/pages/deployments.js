// /ui/deployments: every endpoint with the model it follows, what this server has loaded, its
// traffic policy (single, canary, A/B, shadow, blue-green), the split and the rollout's state.
import { api, fmtTime, h, link, useStyle } from "../app.js";
import { KINDS, rolloutState, splitCell, splitOf } from "../traffic.js";

export async function render({ main, signal }) {
  useStyle("deploy.css");
  const { endpoints } = await api("/api/endpoints", { signal });
  main.replaceChildren(
    h("h1", {}, "Deployments"),
    endpoints.length
      ? table(endpoints)
      : h(
          "p",
          { class: "muted" },
          "No endpoint yet: `shipyard deploy create NAME models:/model@alias` or POST /api/endpoints makes one.",
        ),
  );
}

function table(endpoints) {
  return h(
    "table",
    { class: "plain", id: "deployments" },
    h("caption", { class: "sr-only" }, "Endpoints and their traffic policies"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Endpoint", "Model", "Serving", "Policy", "Traffic split", "Rollout", "Updated"].map((t) =>
          h("th", { scope: "col" }, t),
        ),
      ),
    ),
    h("tbody", {}, endpoints.map(row)),
  );
}

function row(e) {
  const serving = e.serving || {};
  const parts = splitOf(e.policy, e.config, serving.version);
  const loaded = e.serving
    ? [`v${serving.version ?? "?"} `, h("span", { class: "pill" }, serving.state || "")]
    : h("span", { class: "muted" }, "not loaded here");
  return h(
    "tr",
    { dataset: { endpoint: e.name } },
    h("td", {}, link(`/deployments/${encodeURIComponent(e.name)}`, e.name)),
    h("td", {}, e.model_uri),
    h("td", {}, loaded, serving.error ? h("div", { class: "bad" }, serving.error) : null),
    h("td", {}, h("span", { class: "pill policy" }, KINDS[e.policy] || e.policy)),
    h("td", {}, splitCell(parts)),
    h("td", {}, rolloutState(e.policy, e.config)),
    h("td", {}, fmtTime(e.updated_at)),
  );
}
