// What an endpoint's traffic policy does with its requests, for the deployments pages: the
// kind's name, the split between the stable model and a rollout's candidate, and the rollout's
// state in a few words. Reads the stored policy as /api/endpoints returns it.
import { fmtNum, fmtTime, h } from "./app.js";

export const KINDS = {
  single: "single",
  canary: "canary",
  ab: "A/B test",
  shadow: "shadow",
  bluegreen: "blue-green",
};

/** [{role, version, share, note}] — the share (0..100) of answered requests each model gives. */
export function splitOf(policy, config, servingVersion) {
  const c = config || {};
  const stable = c.stable_version ?? servingVersion ?? null;
  const cand = c.candidate_version ?? null;
  const two = (candShare, note) => [
    { role: "stable", version: stable, share: 100 - candShare },
    { role: "candidate", version: cand, share: candShare, note },
  ];
  switch (policy) {
    case "canary":
      return two(Number(c.weight) || 0, c.steps ? `step ${(c.step || 0) + 1} of ${c.steps.length}` : "");
    case "ab":
      return two(Number(c.split) || 0, "of callers (by routing key)");
    case "shadow":
      return [
        { role: "stable", version: stable, share: 100 },
        { role: "shadow", version: cand, share: 0, note: `mirrors ${fmtNum(100 * (c.sample ?? 1))} % of requests, answers none` },
      ];
    case "bluegreen":
      return c.switched ? two(100, "switched") : two(0, "not switched yet");
    default:
      return [{ role: "stable", version: stable, share: 100 }];
  }
}

export function splitText(parts) {
  return parts
    .map((p) => `${p.role}${p.version != null ? " v" + p.version : ""} ${fmtNum(p.share)} %`)
    .join(" · ");
}

/** A bar of the split (decorative: the same numbers are in the text next to it). */
export function splitBar(parts) {
  return h(
    "span",
    { class: "splitbar", "aria-hidden": "true" },
    parts
      .filter((p) => p.share > 0)
      .map((p) => h("span", { class: "seg seg-" + p.role, style: { width: p.share + "%" } })),
  );
}

export function splitCell(parts) {
  return h("span", { class: "split" }, splitBar(parts), " ", splitText(parts));
}

/** The rollout's state in a few words: automatic or manual, and the controller's last word. */
export function rolloutState(policy, config) {
  const c = config || {};
  if (policy === "single") {
    const last = c.last_rollout;
    return last ? `no rollout (last: ${last.policy} v${last.candidate_version} ${last.outcome})` : "no rollout";
  }
  const parts = [c.auto ? "automatic" : "manual"];
  if (c.started_ms) parts.push("since " + fmtTime(c.started_ms));
  if (c.verdict) parts.push(`controller: ${c.verdict.action} (${c.verdict.reason})`);
  return parts.join(" · ");
}
