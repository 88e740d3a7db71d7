// /ui and /ui/experiments: every experiment with its runs by status, when it was made and
// when it last ran; each a link to its runs.
import { api, fmtTime, h, link } from "../app.js";

const STATUSES = ["RUNNING", "FINISHED", "FAILED", "KILLED"];

export async function render({ main, signal }) {
  const { experiments } = await api("/api/experiments?details=true", { signal });
  const active = experiments.filter((e) => e.lifecycle_stage !== "deleted");
  if (!active.length) {
    main.replaceChildren(
      h("h1", {}, "Experiments"),
      h("p", { class: "muted" }, "No experiment yet: `shipyard quickstart` or `sy.start_run(experiment=…)` makes one."),
    );
    return;
  }
  active.sort((a, b) => (b.last_run_at || b.created_at) - (a.last_run_at || a.created_at));
  const rows = active.map((e) =>
    h(
      "tr",
      { dataset: { experiment: e.name } },
      h("th", { scope: "row" }, link(`/runs?experiment=${encodeURIComponent(e.name)}`, e.name)),
      h("td", { class: "num" }, e.runs.toLocaleString("en-US")),
      h("td", {}, STATUSES.filter((s) => e.statuses[s]).map((s) => h("span", { class: `pill status-${s}` }, `${e.statuses[s]} ${s.toLowerCase()}`)), " "),
      h("td", {}, fmtTime(e.last_run_at)),
      h("td", {}, fmtTime(e.created_at)),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Experiments"),
    h(
      "table",
      { class: "plain experiments" },
      h("caption", { class: "muted" }, `${active.length} experiments, the most recently active first`),
      h("thead", {}, h("tr", {}, ["experiment", "runs", "by status", "last run", "created"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
    h("p", {}, link("/runs", "All runs")),
  );
}
