// /ui and /ui/experiments: every experiment, each a link to its runs.
import { api, h, link } from "../app.js";

export async function render({ main, signal }) {
  const { experiments } = await api("/api/experiments", { signal });
  main.replaceChildren(
    h("h1", {}, "Experiments"),
    experiments.length
      ? h(
          "ul",
          { class: "experiments" },
          experiments.map((name) =>
            h("li", {}, link(`/runs?experiment=${encodeURIComponent(name)}`, name)),
          ),
        )
      : h(
          "p",
          { class: "muted" },
          "No experiment yet: `shipyard quickstart` or `sy.start_run(experiment=…)` makes one.",
        ),
    h("p", {}, link("/runs", "All runs")),
  );
}
