// A run's artifacts: the list, downloads, and one preview at a time (?artifact=<path>).
// Nothing in an artifact is ever evaluated or parsed as markup by this page:
//   images      <img> from a blob: URL (an SVG in <img> runs no script)
//   HTML        <iframe sandbox=""> (no allow-scripts: no script, an opaque origin) from a
//               blob: URL; the document also gets a CSP that loads nothing from anywhere
//   CSV/TSV     a small table, cells as text
//   other text  <pre> with textContent (YAML `!!js/function` is just text)
//   binary      a download button only
// Bytes come from GET /api/runs/<id>/artifacts/<path> with the tab's token (api(…, {raw})).
import { api, errorBox, fmtNum, h, setQuery } from "./app.js";

const IMAGE = /\.(png|jpe?g|gif|webp|bmp|avif|svg)$/i;
const HTML = /\.html?$/i;
const TABLE = /\.(csv|tsv)$/i;
const MAX_IMAGE = 20 << 20; // larger images are downloads only
const CSV_ROWS = 50;
const CSV_COLS = 30;
// put first in a previewed HTML document: no script, no network, inline styles only
const FRAME_CSP =
  '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; style-src \'unsafe-inline\'">';

let objectUrls = []; // blob: URLs of the last preview, revoked when the next one is drawn

function artifactUrl(runId, path, query) {
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  return `/api/runs/${encodeURIComponent(runId)}/artifacts/${encoded}${query ? "?" + query : ""}`;
}

function fmtSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function remember(url) {
  objectUrls.push(url);
  return url;
}

export async function renderArtifacts(container, run, q, signal) {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  const list = run.artifacts || [];
  const selected = q.get("artifact");
  const pane = h("div", { class: "artifact-preview", "aria-live": "polite" });
  container.replaceChildren(h("h2", { id: "run-artifacts" }, "Artifacts"));
  if (!list.length) {
    container.append(h("p", { class: "muted" }, "No artifacts."));
    return;
  }
  const show = (path) => {
    setQuery({ artifact: path }, { rerender: false });
    renderArtifacts(container, run, new URLSearchParams(location.search), undefined);
  };
  container.append(artifactTable(run, list, selected, show), pane);
  const record = list.find((a) => a.path === selected);
  if (!record) return;
  pane.append(h("h3", { id: "artifact-shown" }, record.path));
  try {
    pane.append(h("div", { class: "artifact-body" }, await preview(run.id, record, signal)));
  } catch (err) {
    if (err.name === "AbortError") return;
    pane.append(errorBox(err));
  }
}

function artifactTable(run, list, selected, show) {
  const rows = list.map((a) =>
    h(
      "tr",
      { class: a.path === selected ? "selected" : null },
      h("th", { scope: "row" }, a.path),
      h("td", { class: "num" }, fmtSize(a.size)),
      h("td", {}, h("code", { title: a.digest }, a.digest.slice(0, 12))),
      h(
        "td",
        {},
        h("button", { type: "button", "aria-label": `Preview ${a.path}`, "aria-pressed": a.path === selected ? "true" : "false", onclick: () => show(a.path) }, "Preview"),
        " ",
        h("button", { type: "button", "aria-label": `Download ${a.path}`, onclick: (ev) => download(run.id, a, ev.target) }, "Download"),
      ),
    ),
  );
  return h(
    "table",
    { class: "plain artifacts" },
    h("caption", { class: "sr-only" }, "Artifacts"),
    h("thead", {}, h("tr", {}, ["path", "size", "digest", ""].map((t, i) => h("th", { scope: "col" }, t || h("span", { class: "sr-only" }, "actions"))))),
    h("tbody", {}, rows),
  );
}

async function download(runId, record, button) {
  button.disabled = true;
  try {
    const res = await api(artifactUrl(runId, record.path), { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: record.path.split("/").pop() });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    button.after(errorBox(err));
  } finally {
    button.disabled = false;
  }
}

async function preview(runId, record, signal) {
  const { path } = record;
  if (IMAGE.test(path)) {
    if (record.size > MAX_IMAGE) return h("p", { class: "muted" }, `Too large to preview (${fmtSize(record.size)}); download it.`);
    const res = await api(artifactUrl(runId, path, "inline=1"), { raw: true, signal });
    const bytes = await res.arrayBuffer();
    // an SVG is a document that can hold scripts: as a blob: URL it has this page's origin,
    // and "open image in new tab" would run them there. A data: URL shows it in the <img>
    // (where no script runs) and a browser refuses to open one as a page.
    const url = /\.svg$/i.test(path)
      ? dataUrl(bytes, "image/svg+xml")
      : remember(URL.createObjectURL(new Blob([bytes], { type: imageType(res) })));
    return h("img", { src: url, alt: `artifact ${path}`, class: "artifact-image" });
  }
  const res = await api(artifactUrl(runId, path, "inline=1&preview=1"), { raw: true, signal });
  const type = res.headers.get("content-type") || "";
  const truncated = res.headers.get("x-artifact-truncated") === "1";
  const note = truncated ? h("p", { class: "muted" }, `Showing the first ${fmtSize(1 << 20)} of ${fmtSize(record.size)}.`) : null;
  if (type.startsWith("application/octet-stream")) {
    return h("p", { class: "muted" }, "A binary file: no preview; download it.");
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(await res.arrayBuffer());
  if (HTML.test(path)) return [note, htmlFrame(path, text)];
  if (TABLE.test(path)) return [note, csvTable(text, /\.tsv$/i.test(path) ? "\t" : ",", path)];
  return [note, h("pre", { class: "preview", tabindex: "0", "aria-label": `contents of ${path}` }, text)];
}

function dataUrl(bytes, type) {
  const all = new Uint8Array(bytes);
  let text = "";
  for (let i = 0; i < all.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, all.subarray(i, i + 0x8000));
  }
  return `data:${type};base64,${btoa(text)}`;
}

/** The server's image type for a raster image (never a document type). */
function imageType(res) {
  const type = (res.headers.get("content-type") || "").split(";")[0].trim();
  return /^image\/(png|jpeg|gif|webp|bmp|avif)$/.test(type) ? type : "application/octet-stream";
}

function htmlFrame(path, text) {
  const blob = new Blob([FRAME_CSP, text], { type: "text/html" });
  return h("iframe", {
    class: "preview",
    sandbox: "",
    referrerpolicy: "no-referrer",
    src: remember(URL.createObjectURL(blob)),
    title: `preview of ${path} (sandboxed: no scripts)`,
  });
}

/** The first CSV_ROWS rows of CSV text (RFC 4180 quotes), cut to CSV_COLS columns. */
export function parseCsv(text, sep = ",", maxRows = CSV_ROWS + 1) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"' && cell === "") quoted = true;
    else if (c === sep) {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if ((cell !== "" || row.length) && rows.length < maxRows) rows.push([...row, cell]);
  return rows;
}

function csvTable(text, sep, path) {
  const rows = parseCsv(text, sep);
  if (!rows.length) return h("p", { class: "muted" }, "Empty.");
  const [head, ...body] = rows.map((r) => r.slice(0, CSV_COLS));
  const more = rows.length > CSV_ROWS ? h("p", { class: "muted" }, `First ${CSV_ROWS} rows.`) : null;
  return [
    h(
      "div",
      { class: "csv-wrap", tabindex: "0", role: "region", "aria-label": `table ${path}` },
      h(
        "table",
        { class: "plain csv" },
        h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, body.slice(0, CSV_ROWS - 1).map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
      ),
    ),
    more,
    h("p", { class: "muted" }, `${fmtNum(head.length)} columns shown.`),
  ];
}
