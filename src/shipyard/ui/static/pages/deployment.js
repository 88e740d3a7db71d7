// /ui/deployments/<name>: one endpoint's traffic policy and split; its live traffic by model
// version from the server's own counters (requests, rate, errors, p50/p95 latency), refreshed
// every few seconds while the page is open; the rollout controller's verdicts with their
// evidence; the endpoint's history; Promote, Rollback, and Advance (a canary's next step) or
// Switch (blue-green) — admin scope, each with a reason, audited.
import { allows, api, errorBox, fmtNum, fmtTime, h, useStyle, whoami } from "../app.js";
import { KINDS, rolloutState, splitCell, splitOf } from "../traffic.js";

const STATS_MS = 3000; // live traffic
const STATUS_EVERY = 5; // the controller's view and the history: every 5th refresh

export async function render({ main, params, signal }) {
  useStyle("deploy.css");
  const name = params[0];
  const view = { name, enc: encodeURIComponent(name), signal, sections: {} };
  const [status, history, stats] = await load(view, true);
  view.who = await whoami();
  view.message = h("p", { role: "status", class: "muted", id: "action-status" });
  view.sections = {
    policy: h("section", { "aria-labelledby": "policy-h" }),
    live: h("section", { "aria-labelledby": "live-h" }),
    controller: h("section", { "aria-labelledby": "controller-h" }),
    history: h("section", { "aria-labelledby": "history-h" }),
    actions: h("div", { class: "actions" }),
  };
  main.replaceChildren(
    h("h1", {}, "Deployment ", h("code", {}, name)),
    view.sections.policy,
    view.sections.actions,
    view.message,
    view.sections.live,
    view.sections.controller,
    view.sections.history,
  );
  show(view, status, history, stats);
  keepFresh(view);
}

async function load(view, all) {
  const get = (path) => api(path, { signal: view.signal });
  return Promise.all([
    all ? get(`/api/deployments/${view.enc}`) : null,
    all ? get(`/api/deployments/${view.enc}/history?limit=100`) : null,
    get(`/api/endpoints/${view.enc}/stats`),
  ]);
}

function show(view, status, history, stats) {
  if (status) {
    view.status = status;
    view.sections.policy.replaceChildren(...policySection(status, stats));
    const kind = `${status.policy}|${(status.config || {}).switched}`;
    if (view.actionsFor !== kind) {
      // rebuilt only when they change: a refresh must not take the focus off a button
      view.actionsFor = kind;
      view.sections.actions.replaceChildren(...actions(view, status));
    }
    view.sections.controller.replaceChildren(...controllerSection(status));
  }
  if (history) view.sections.history.replaceChildren(...historySection(history.events));
  if (stats) view.sections.live.replaceChildren(...liveSection(stats, view.status));
}

/** Refresh while the page is shown; the router's abort (navigation) ends it. */
async function keepFresh(view) {
  for (let tick = 1; !view.signal.aborted; tick++) {
    await sleep(STATS_MS, view.signal);
    if (view.signal.aborted) return;
    try {
      const [status, history, stats] = await load(view, tick % STATUS_EVERY === 0);
      if (!view.signal.aborted) show(view, status, history, stats);
    } catch (err) {
      if (view.signal.aborted || (err && err.name === "AbortError")) return;
      view.sections.live.replaceChildren(h("h2", { id: "live-h" }, "Live traffic by version"), errorBox(err));
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}

// ---- policy and split ------------------------------------------------------------------------

function policySection(status, stats) {
  const c = status.config || {};
  const parts = splitOf(status.policy, c, stats && stats.serving && stats.serving.version);
  const rows = [
    ["Model", status.model_uri],
    ["Policy", h("span", { class: "pill policy", id: "policy-kind" }, KINDS[status.policy] || status.policy)],
    ["Traffic split", h("span", { id: "split" }, splitCell(parts))],
    ["Rollout", rolloutState(status.policy, c)],
    c.candidate_uri && ["Candidate", c.candidate_uri],
    c.steps && ["Steps", c.steps.map((s) => s + " %").join(" → ")],
    c.min_requests && ["Minimums per step", `${c.min_requests} requests, ${fmtNum(c.min_seconds)} s`],
    c.min_samples && ["A/B horizon", `${c.min_samples} outcomes per arm, alpha ${c.alpha}`],
    c.min_agreement != null && ["Agreement needed", fmtNum(c.min_agreement)],
    c.keep_seconds != null && ["Keep the old version", `${fmtNum(c.keep_seconds)} s`],
    c.thresholds && ["Thresholds", thresholdsText(c.thresholds)],
    c.gate_override && ["Gates overridden", c.gate_override],
    ["Generation", status.generation],
  ].filter(Boolean);
  return [h("h2", { id: "policy-h" }, "Policy and traffic"), dl(rows)];
}

function thresholdsText(t) {
  return Object.entries(t)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k} ${fmtNum(v)}`)
    .join(", ");
}

function dl(rows) {
  return h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// ---- promote / rollback ----------------------------------------------------------------------

// what each button posts, and how the message says it was done
const ACTIONS = {
  promote: ["Promote", "Promoted"],
  rollback: ["Rollback", "Rolled back"],
  step: ["Advance", "Advanced"],
  switch: ["Switch", "Switched"],
};

function actions(view, status) {
  const c = status.config || {};
  const rollout = status.policy !== "single";
  const admin = allows("admin");
  const who = view.who;
  const why = !admin
    ? `Promote and Rollback need the admin scope; you are ${who.name} (${who.scopes.join(", ") || "no scope"}).`
    : !rollout
      ? "No rollout in progress: nothing to promote or roll back."
      : "Each asks for a reason, recorded in the audit log with your name.";
  const verbs = ["promote", "rollback"];
  if (status.policy === "canary") verbs.splice(1, 0, "step");
  if (status.policy === "bluegreen" && !c.switched) verbs.splice(1, 0, "switch");
  const button = (verb) =>
    h(
      "button",
      {
        type: "button",
        id: verb,
        disabled: !admin || !rollout,
        "aria-describedby": "actions-why",
        onclick: () => act(view, verb),
      },
      ACTIONS[verb][0],
    );
  return [...verbs.map(button), h("p", { id: "actions-why", class: "muted" }, why)];
}

async function act(view, verb) {
  const [label, done] = ACTIONS[verb];
  const reason = await askReason(`${label} ${view.name}?`, label);
  if (reason === null) return;
  view.message.replaceChildren(`${label}…`);
  try {
    await api(`/api/deployments/${view.enc}/${verb}`, { method: "POST", body: { reason }, signal: view.signal });
    view.message.replaceChildren(`${done} ${view.name}: ${reason}`);
    const [status, history, stats] = await load(view, true);
    show(view, status, history, stats);
  } catch (err) {
    if (view.signal.aborted) return;
    view.message.replaceChildren(errorBox(err));
  }
}

/** A modal asking why; resolves to the reason, or null when cancelled. */
function askReason(title, verb) {
  return new Promise((resolve) => {
    const text = h("textarea", { id: "reason", name: "reason", required: true, maxlength: 1000 });
    const dialog = h(
      "dialog",
      { class: "reason", "aria-labelledby": "reason-h" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "reason-h" }, title),
        h("label", { for: "reason" }, "Reason (kept in the audit log)"),
        text,
        h(
          "menu",
          {},
          h("button", { type: "button", onclick: () => dialog.close("") }, "Cancel"),
          h("button", { type: "submit", value: "ok", id: "reason-ok" }, verb),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok" && text.value.trim();
      dialog.remove();
      resolve(ok ? text.value.trim() : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    text.focus();
  });
}

// ---- live traffic ----------------------------------------------------------------------------

function roleOf(version, status, servingVersion) {
  const c = (status && status.config) || {};
  if (c.candidate_version != null && String(c.candidate_version) === version) {
    return status.policy === "shadow" ? "shadow" : "candidate";
  }
  if (c.stable_version != null && String(c.stable_version) === version) return "stable";
  if (servingVersion != null && String(servingVersion) === version) return "stable";
  return "earlier";
}

function liveSection(stats, status) {
  const servingVersion = stats.serving && stats.serving.version;
  const recent = stats.recent_seconds;
  const head = ["Version", "Role", "Requests", "Rate /s", "Errors 5xx", "Errors 4xx", "Error rate", "p50 ms", "p95 ms"];
  const body = stats.versions.map((v) => {
    const r = v.recent && v.recent.requests > 0 ? v.recent : v.total;
    const rate = v.recent ? fmtNum(round(v.recent.rate_per_second)) : "…";
    return h(
      "tr",
      { dataset: { version: v.version } },
      h("th", { scope: "row" }, `v${v.version}`),
      h("td", {}, roleOf(v.version, status, servingVersion)),
      h("td", { class: "num requests" }, fmtNum(v.total.requests)),
      h("td", { class: "num rate" }, rate),
      h("td", { class: "num" + (v.total.server_errors ? " bad" : "") }, fmtNum(v.total.server_errors)),
      h("td", { class: "num" }, fmtNum(v.total.client_errors)),
      h("td", { class: "num" }, pct(v.total.error_rate)),
      h("td", { class: "num" }, fmtNum(round(r.p50_ms))),
      h("td", { class: "num" }, fmtNum(round(r.p95_ms))),
    );
  });
  return [
    h("h2", { id: "live-h" }, "Live traffic by version"),
    stats.versions.length
      ? h(
          "table",
          { class: "plain", id: "live" },
          h("caption", { class: "sr-only" }, "Requests, rate, errors and latency by model version"),
          h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { scope: "col", class: i > 1 ? "num" : null }, t)))),
          h("tbody", {}, body),
        )
      : h("p", { class: "muted" }, "No request answered by this server since it started."),
    h(
      "p",
      { class: "muted updated" },
      `This server's own counters, updated ${fmtTime(stats.at_ms)}. Requests and errors since it started; `,
      recent ? `rate and latency over the last ${Math.round(recent)} s.` : "the rate appears at the next refresh.",
    ),
  ];
}

function round(v) {
  return v === null || v === undefined ? v : Math.round(v * 100) / 100;
}

function pct(v) {
  return v === null || v === undefined ? "" : fmtNum(Math.round(v * 10000) / 100) + " %";
}

// ---- the controller and the history ------------------------------------------------------------

function controllerSection(status) {
  const out = [h("h2", { id: "controller-h" }, "Rollout controller")];
  if (status.policy === "single") {
    const last = (status.config || {}).last_rollout;
    out.push(h("p", { class: "muted" }, "No rollout in progress."));
    if (last) {
      out.push(
        dl([
          ["Last rollout", `${KINDS[last.policy] || last.policy} of v${last.candidate_version}: ${last.outcome}`],
          ["Why", last.reason],
          ["Ended", fmtTime(last.ended_ms)],
        ]),
        evidence(last.evidence),
      );
    }
    return out;
  }
  const would = status.would_decide;
  const last = status.last_verdict;
  out.push(
    dl(
      [
        would && ["Would decide now", h("span", { id: "would-decide" }, `${would.action}: ${would.reason}`)],
        would && would.warnings.length && ["Warnings", would.warnings.join("; ")],
        last && ["Last verdict", `${last.action}: ${last.reason} (${fmtTime(last.at_ms)})`],
      ].filter(Boolean),
    ),
  );
  if (status.live) out.push(variantsTable(status.live), liveExtras(status.live));
  if (last && last.evidence) out.push(evidence(last.evidence, "Evidence of the last verdict"));
  return out;
}

function variantsTable(live) {
  const entries = Object.entries(live.variants || {});
  if (!entries.length) return h("p", { class: "muted" }, `No logged request since ${fmtTime(live.since_ms)}.`);
  const head = ["Variant", "Requests", "Errors", "Error rate", "p50 ms", "p99 ms", "Rows"];
  return h(
    "table",
    { class: "plain", id: "evidence" },
    h("caption", {}, `Evidence from the prediction log since ${fmtTime(live.since_ms)}`),
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      entries.map(([name, v]) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, name),
          [v.requests, v.errors, pct(v.error_rate), round(v.p50_ms), round(v.p99_ms), v.rows].map((x) =>
            h("td", { class: "num" }, fmtNum(x)),
          ),
        ),
      ),
    ),
  );
}

function liveExtras(live) {
  const rows = [];
  const q = live.quality;
  if (q && q.task) {
    const fmt = (m) =>
      Object.entries(m || {})
        .filter(([k, v]) => k !== "n" && typeof v === "number")
        .map(([k, v]) => `${k} ${fmtNum(round(v))}`)
        .join(", ");
    for (const [k, m] of Object.entries(q)) if (k !== "task") rows.push([`Quality (${k})`, fmt(m)]);
  }
  const t = live.prediction_test;
  if (t) rows.push(["Predictions vs stable", `${t.test}: p=${fmtNum(t.p_value)}, ${t.effect_metric} ${fmtNum(t.effect_size)}`]);
  if (live.agreement != null) rows.push(["Shadow agreement", fmtNum(live.agreement)]);
  if (live.warnings && live.warnings.length) rows.push(["Warnings", live.warnings.join("; ")]);
  return rows.length ? dl(rows) : null;
}

function evidence(doc, title = "Evidence") {
  if (!doc) return null;
  return h("details", {}, h("summary", {}, title), h("pre", { class: "json" }, JSON.stringify(doc, null, 2)));
}

function historySection(events) {
  const out = [h("h2", { id: "history-h" }, "History")];
  if (!events.length) return [...out, h("p", { class: "muted" }, "No recorded change.")];
  const head = ["When", "Action", "Who", "Reason", "Policy after", "Details"];
  out.push(
    h(
      "table",
      { class: "plain", id: "history" },
      h("caption", { class: "sr-only" }, "Changes to this endpoint, newest first"),
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        events.map((e) => {
          const after = e.after || {};
          return h(
            "tr",
            { dataset: { action: e.action } },
            h("td", {}, fmtTime(e.ts)),
            h("td", {}, e.action),
            h("td", {}, e.actor),
            h("td", {}, e.reason || ""),
            h("td", {}, after.policy ? KINDS[after.policy] || after.policy : ""),
            h("td", {}, evidence(after.evidence ? after.evidence : after, "show")),
          );
        }),
      ),
    ),
  );
  return out;
}
