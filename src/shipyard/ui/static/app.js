// shipyard's web UI: a router over /ui/<page>, the API client, the URL state, and DOM helpers.
// No framework and no build step; each page is a module in pages/ exporting
// `render(ctx)`. Nothing is ever written with innerHTML: text goes in as text nodes, so a
// run name, a param value or an artifact cannot inject markup.

const TOKEN_KEY = "shipyard.token";
const ROUTES = [
  // [path pattern, page module, section highlighted in the header]
  [/^\/?$/, "experiments", "experiments"],
  [/^\/experiments\/?$/, "experiments", "experiments"],
  [/^\/runs\/?$/, "runs", "runs"],
  [/^\/runs\/([^/]+)\/?$/, "run", "runs"],
  [/^\/compare\/?$/, "compare", "runs"],
  [/^\/models\/?$/, "models", "models"],
  [/^\/models\/([^/]+)\/?$/, "model", "models"],
  [/^\/models\/([^/]+)\/versions\/(\d+)\/?$/, "version", "models"],
  [/^\/deployments\/?$/, "deployments", "deployments"],
  [/^\/deployments\/([^/]+)\/?$/, "deployment", "deployments"],
  [/^\/monitoring\/?$/, "monitoring", "monitoring"],
  [/^\/monitoring\/([^/]+)\/?$/, "monitor", "monitoring"],
];

// ---- DOM ------------------------------------------------------------------------------------

/** h("a", {href: "/ui/runs", class: "x", onclick: fn}, "text", child…) → an element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A link inside the UI: `link("/runs/abc", "abc")` → <a href="/ui/runs/abc">. */
export function link(path, ...children) {
  return h("a", { href: uiUrl(path) }, ...children);
}

export function uiUrl(path, query) {
  const q = query && String(query instanceof URLSearchParams ? query : new URLSearchParams(query));
  return "/ui" + (path.startsWith("/") ? path : "/" + path) + (q ? "?" + q : "");
}

export function fmtNum(v) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v !== "number") return String(v);
  if (Number.isNaN(v)) return "NaN";
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(5));
}

export function fmtTime(ms) {
  if (!ms) return "";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

// ---- the URL is the view's state ------------------------------------------------------------

export function query() {
  return new URLSearchParams(location.search);
}

/** Change some of the view's state: `patch` values of null/"" remove the key. Replaces the
 * history entry unless `push`; renders the page again unless `rerender` is false. */
export function setQuery(patch, { push = false, rerender = true } = {}) {
  const q = query();
  for (const [key, value] of Object.entries(patch)) {
    if (value === null || value === undefined || value === "" || value === false) q.delete(key);
    else q.set(key, value === true ? "1" : String(value));
  }
  const url = location.pathname + (String(q) ? "?" + q : "");
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  if (rerender) route();
}

export function navigate(url) {
  history.pushState(null, "", url);
  route();
}

// ---- the API --------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.message || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** fetch /api…: JSON in and out, the tab's credentials sent, errors as ApiError. */
export async function api(path, { method = "GET", body, signal, raw = false } = {}) {
  const headers = {};
  const t = token();
  if (t) headers.authorization = "Bearer " + t;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (raw && res.ok) return res;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text.slice(0, 300) };
  }
  if (!res.ok) {
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY); // refused: ask again rather than resend it
      who = null;
      showLogin(data && (data.error || data.message));
    }
    throw new ApiError(res.status, data && typeof data === "object" ? flatten(data) : null);
  }
  return data;
}

function flatten(data) {
  // FastAPI's validation errors: {"detail": [{"loc": [...], "msg": "..."}]}
  if (Array.isArray(data.detail)) {
    const first = data.detail[0] || {};
    const loc = (first.loc || []).filter((p) => p !== "query" && p !== "body").join(".");
    return { ...data, message: `${loc ? loc + ": " : ""}${first.msg || "invalid request"}` };
  }
  return data;
}

let who = null;

/** Who the tab is: {name, scopes, auth_required}; cached for the tab's life. */
export async function whoami() {
  if (who === null) {
    if (!token()) {
      // ask the open index first: a request the server would refuse logs a console error
      const index = await fetch("/", { headers: { accept: "application/json" } });
      const info = index.ok ? await index.json() : {};
      if (info.auth_required) {
        showLogin();
        throw new ApiError(401, { message: "credentials required" });
      }
    }
    try {
      who = await api("/api/whoami");
    } catch (err) {
      if (err.status === 401) throw err;
      who = { name: "anonymous", scopes: [], auth_required: false };
    }
    const el = document.getElementById("who");
    if (el) {
      el.replaceChildren(
        who.name + (who.scopes.length ? ` (${who.scopes.join(", ")})` : ""),
        token() ? " " : "",
        token() ? h("button", { type: "button", onclick: logout }, "Sign out") : "",
      );
    }
  }
  return who;
}

/** Whether the tab may do what needs `scope` ("admin" allows everything). */
export function allows(scope) {
  return !!who && (who.scopes.includes("admin") || who.scopes.includes(scope));
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  who = null;
  location.reload();
}

function showLogin(message) {
  const main = document.getElementById("main");
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    size: 48,
    "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    {
      onsubmit: (ev) => {
        ev.preventDefault();
        if (!input.value.trim()) return;
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        who = null;
        route();
      },
    },
    h("h1", {}, "Sign in"),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("label", { for: "token" }, "API key or JWT "),
    input,
    " ",
    h("button", { type: "submit" }, "Sign in"),
    h(
      "p",
      { id: "token-help", class: "muted" },
      "The same credentials as the API (create a key with `shipyard keys create`). " +
        "Kept for this tab only; without a write scope the pages are read-only.",
    ),
  );
  main.replaceChildren(form);
  input.focus();
}

/** Load a page's own stylesheet once: `useStyle("compare.css")` → /ui/assets/compare.css. */
export function useStyle(name) {
  const href = "/ui/assets/" + name;
  if (!document.querySelector(`link[href="${href}"]`)) {
    document.head.append(h("link", { rel: "stylesheet", href }));
  }
}

// ---- charts ---------------------------------------------------------------------------------

let plotly = null;

/** plotly.js, loaded once, from the server (the `plotly` package's file). */
export function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/ui/assets/vendor/plotly.min.js";
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => reject(new Error("charts are unavailable: plotly.js did not load"));
      document.head.append(s);
    });
  }
  return plotly;
}

// Plotly renders a subset of HTML in the text it draws (titles, legends, labels, category
// ticks): `<a href>` becomes a link, `<b>` bold. Every string we hand it as text is escaped
// first, so a run, metric or feature name is drawn as the characters it is.
const PLOT_TEXT = new Set(["name", "text", "hovertext", "label", "ticktext", "x", "y", "title", "labels"]);
export const PLOT_CONFIG = {
  displaylogo: false,
  responsive: true,
  showLink: false,
  showSendToCloud: false,
  showEditInChartStudio: false,
  modeBarButtonsToRemove: ["sendDataToCloud", "select2d", "lasso2d"],
};

function plotEscape(value, asText) {
  if (typeof value === "string") {
    return asText ? value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;") : value;
  }
  if (Array.isArray(value)) return value.map((v) => plotEscape(v, asText));
  if (value && typeof value === "object" && !(value instanceof Date)) {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plotEscape(v, asText || PLOT_TEXT.has(k));
    return out;
  }
  return value;
}

/** Plotly.react with every text escaped and the offline configuration (no cloud links). */
export async function plot(el, data, layout, config = {}) {
  const Plotly = await loadPlotly();
  return Plotly.react(el, plotEscape(data, false), plotEscape(layout, false), { ...PLOT_CONFIG, ...config });
}

// ---- the router -----------------------------------------------------------------------------

let current = null; // the AbortController of the page being shown

export async function route() {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const path = location.pathname.replace(/^\/ui/, "") || "/";
  const main = document.getElementById("main");
  let found = null;
  for (const [pattern, page, section] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      found = { page, section, params: m.slice(1).map(decodeURIComponent) };
      break;
    }
  }
  for (const a of document.querySelectorAll("header nav a")) {
    if (found && a.dataset.section === found.section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!found) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, `No page at ${location.pathname}.`));
    return;
  }
  try {
    const [me, mod] = await Promise.all([whoami(), import(`./pages/${found.page}.js`)]);
    if (controller.signal.aborted) return;
    if (me.endpoints && !["deployments", "monitoring"].includes(found.section)) {
      main.replaceChildren(...limitedTo(me.endpoints));
      return;
    }
    await mod.render({
      main,
      params: found.params,
      query: query(),
      signal: controller.signal,
    });
  } catch (err) {
    if (controller.signal.aborted || (err && err.name === "AbortError")) return;
    if (err && err.status === 401) return; // the sign-in form is showing
    main.replaceChildren(h("h1", {}, "Something went wrong"), errorBox(err));
  }
}

/** What a key limited to some endpoints is shown instead of the pages it may not read. */
function limitedTo(endpoints) {
  return [
    h("h1", {}, "Limited to its endpoints"),
    h("p", {}, "This key may only see and act on the endpoint(s) it names: ",
      endpoints.length ? endpoints.map((e, i) => [i ? ", " : "", link(`/deployments/${encodeURIComponent(e)}`, e)]) : "none",
      ". Runs, models and experiments need a key without that limit."),
    h("p", {}, link("/deployments", "Its deployments"), " · ", link("/monitoring", "its monitoring")),
  ];
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[href]");
  if (!a || ev.defaultPrevented || ev.button !== 0) return;
  if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui")) return;
  if (url.pathname.startsWith("/ui/assets/")) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);
route();
