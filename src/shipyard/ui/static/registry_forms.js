// The version page's two writes: the review (approve / reject, POST …/approval) and pointing
// an alias at the version (PUT /api/models/{name}/aliases/{alias}). Both need the "admin"
// scope (every non-GET /api route does): without it the controls are disabled and say why,
// and the page sends nothing that would be refused. Each change is audited by the server
// under the caller's name.
import { allows, api, errorBox, h, setQuery } from "./app.js";
import { approvalBadge, section } from "./registry.js";

const ALIAS = /^(?![0-9]+$)[A-Za-z0-9_-]{1,128}$/;

function readOnlyNote(id, who, what) {
  return h(
    "p",
    { id, class: "notice" },
    `Read-only: ${who.name} lacks the "admin" scope that ${what} needs. ` +
      "Sign in with an admin key or token to do it here.",
  );
}

function status(id) {
  return h("div", { id, role: "status", "aria-live": "polite" });
}

async function send(out, buttons, request) {
  for (const b of buttons) b.disabled = true;
  out.replaceChildren("Saving…");
  try {
    await request();
    setQuery({}); // the page again, as the server now has it
  } catch (err) {
    out.replaceChildren(errorBox(err));
    for (const b of buttons) b.disabled = false;
  }
}

function decided(v) {
  const tags = v.tags || {};
  return h(
    "p",
    {},
    "This version is ",
    approvalBadge(v.approval),
    tags.approval_reviewer ? ` by ${tags.approval_reviewer}` : "",
    tags.approval_comment ? `: “${tags.approval_comment}”` : ".",
  );
}

function reviewButton(label, may, onclick) {
  const described = may ? null : "review-why";
  const attrs = { type: "button", disabled: !may, "aria-describedby": described, onclick };
  return h("button", attrs, label);
}

/** The review: the state, and for a pending version a comment box with APPROVE / REJECT. */
export function reviewSection(v, who) {
  if (v.approval !== "pending") return section("review", "Approval", decided(v));
  const may = allows("admin");
  const url = `/api/models/${encodeURIComponent(v.name)}/versions/${v.version}/approval`;
  const signedIn = who.name !== "anonymous";
  const reviewer = h("input", {
    id: "reviewer",
    type: "text",
    value: who.name,
    readonly: signedIn,
    disabled: !may,
    "aria-describedby": signedIn ? "reviewer-help" : null,
  });
  const comment = h("textarea", { id: "review-comment", disabled: !may });
  const out = status("review-status");
  const act = (state) => () => {
    const body = { state, reviewer: reviewer.value.trim() || who.name, comment: comment.value };
    send(out, buttons, () => api(url, { method: "POST", body }));
  };
  const buttons = [
    reviewButton("Approve", may, act("approved")),
    reviewButton("Reject", may, act("rejected")),
  ];
  return section(
    "review",
    "Approval",
    h(
      "div",
      { class: "review" },
      h(
        "p",
        {},
        "This version is ",
        approvalBadge("pending"),
        ". Endpoints that require approval serve only approved versions.",
      ),
      may ? null : readOnlyNote("review-why", who, "approving or rejecting"),
      h("div", { class: "row" }, h("label", { for: "reviewer" }, "Reviewer"), reviewer),
      signedIn
        ? h(
            "p",
            { id: "reviewer-help", class: "muted" },
            "Your credentials' name; the audit log records them as the actor.",
          )
        : null,
      h("label", { for: "review-comment" }, "Comment (kept with the decision, and audited)"),
      comment,
      h("div", { class: "row" }, buttons),
      out,
    ),
  );
}

function field(id, label, input) {
  return h("div", { class: "row" }, h("label", { for: id }, label), input);
}

function aliasesNow(v, known) {
  const here = v.aliases && v.aliases.length;
  return h(
    "p",
    {},
    here ? `Points here: ${v.aliases.map((a) => "@" + a).join(", ")}. ` : "No alias points here. ",
    known.length ? `The model's: ${known.map(([a, n]) => `@${a} → v${n}`).join(", ")}.` : "",
  );
}

/** Point an alias (new, or moved from another version) at this version. */
export function aliasSection(v, modelAliases, who) {
  const may = allows("admin");
  const input = (id, more) => h("input", { id, type: "text", disabled: !may, ...more });
  const name = input("alias-name", { list: "alias-known", required: true, autocomplete: "off" });
  const reason = input("alias-reason", { size: 32 });
  const override = input("alias-override", { size: 32 });
  const out = status("alias-status");
  const known = Object.entries(modelAliases || {}).sort(([a], [b]) => a.localeCompare(b));
  const why = may ? null : "alias-why";
  const button = h(
    "button",
    { type: "submit", disabled: !may, "aria-describedby": why },
    "Point alias here",
  );
  let confirmed = null; // the alias whose move the user confirmed with a second click
  const submit = (ev) => {
    ev.preventDefault();
    const alias = name.value.trim();
    if (!ALIAS.test(alias)) {
      out.replaceChildren(errorBox("alias: 1 to 128 letters, digits, '-' or '_', not only digits"));
      return;
    }
    const from = (modelAliases || {})[alias];
    if (from !== undefined && Number(from) !== Number(v.version)) {
      // moving a live alias switches every endpoint that follows it: say so, ask for why
      if (!reason.value.trim()) {
        out.replaceChildren(errorBox(`moving @${alias} needs a reason (it is audited)`));
        reason.focus();
        return;
      }
      if (confirmed !== alias) {
        confirmed = alias;
        button.textContent = `Move @${alias} from v${from} to v${v.version}`;
        out.replaceChildren(
          h("p", { class: "warning", role: "alert" },
            `Every endpoint that follows models:/${v.name}@${alias} will serve v${v.version} ` +
              `instead of v${from} at once (a rollout in progress on it included). ` +
              "Click again to move it."),
        );
        return;
      }
    }
    confirmed = null;
    const body = {
      version: v.version,
      reason: reason.value.trim() || null,
      override_gates: override.value.trim() || null,
    };
    const url = `/api/models/${encodeURIComponent(v.name)}/aliases/${encodeURIComponent(alias)}`;
    send(out, [button], () => api(url, { method: "PUT", body }));
  };
  return section(
    "aliases",
    "Aliases",
    aliasesNow(v, known),
    h("datalist", { id: "alias-known" }, known.map(([a]) => h("option", { value: a }))),
    may ? null : readOnlyNote("alias-why", who, "moving an alias"),
    h(
      "form",
      { class: "review", onsubmit: submit },
      field("alias-name", "Alias", name),
      field("alias-reason", "Why (audited)", reason),
      field("alias-override", "Override failed quality gates: the reason", override),
      h("div", { class: "row" }, button),
      out,
    ),
  );
}
