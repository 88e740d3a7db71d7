// A virtualised grid: only the rows and columns in view (plus a few) are in the DOM, so a
// table of thousands of runs by thousands of columns costs what a screenful costs.
// ARIA grid roles carry the true row and column counts for assistive technology.
import { h } from "./app.js";

const ROW = 28;
const COL = 150;
const OVERSCAN_ROWS = 8;
const OVERSCAN_COLS = 2;

/**
 * new Grid({label, fixed: {title, width, cell(row, i)}, columns: [{key, title, cell(row), num,
 *   sort: "asc"|"desc"|null, onsort}], rowCount, row(i) → data or undefined (not loaded yet),
 *   onrange(first, last) → called with the rows in view (load more there)})
 */
export class Grid {
  constructor(opts) {
    this.o = opts;
    this.canvas = h("div", { class: "vcanvas", role: "presentation" });
    this.el = h(
      "div",
      {
        class: "vgrid",
        role: "grid",
        tabindex: 0,
        "aria-label": opts.label,
        "aria-rowcount": opts.rowCount + 1,
        "aria-colcount": opts.columns.length + 1,
        onscroll: () => this.schedule(),
      },
      this.canvas,
    );
    this.pending = false;
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.el);
  }

  /** Draw again (after rows arrived or the row count changed). */
  setRowCount(n) {
    this.o.rowCount = n;
    this.el.setAttribute("aria-rowcount", n + 1);
    this.schedule();
  }

  /** Show other columns (the same rows). */
  setColumns(columns) {
    this.o.columns = columns;
    this.el.setAttribute("aria-colcount", columns.length + 1);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { fixed, columns, rowCount } = this.o;
    const width = fixed.width + columns.length * COL;
    this.canvas.style.width = width + "px";
    this.canvas.style.height = (rowCount + 1) * ROW + "px";
    const top = this.el.scrollTop;
    const left = Math.max(0, this.el.scrollLeft);
    const height = this.el.clientHeight || 600;
    const view = this.el.clientWidth || 1200;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN_ROWS);
    const last = Math.min(rowCount, Math.ceil((top + height) / ROW) + OVERSCAN_ROWS);
    const c0 = Math.max(0, Math.floor(left / COL) - OVERSCAN_COLS);
    const c1 = Math.min(columns.length, Math.ceil((left + view - fixed.width) / COL) + OVERSCAN_COLS);
    const shown = columns.slice(c0, c1);
    const rows = [this.header(shown, c0, width)];
    for (let i = first; i < last; i++) rows.push(this.row(i, shown, c0, width));
    this.canvas.replaceChildren(...rows);
    if (this.o.onrange) this.o.onrange(first, last);
  }

  header(shown, c0, width) {
    const cells = [
      h("div", { role: "columnheader", class: "vfixed", style: { width: this.o.fixed.width + "px" }, "aria-colindex": 1 }, this.o.fixed.title),
      h("div", { class: "vpad", style: { width: c0 * COL + "px" }, "aria-hidden": "true" }),
    ];
    shown.forEach((col, k) => {
      const sort = col.sort === "desc" ? "descending" : col.sort === "asc" ? "ascending" : undefined;
      cells.push(
        h(
          "div",
          { role: "columnheader", class: "vcell", "aria-colindex": c0 + k + 2, "aria-sort": sort, title: col.title },
          col.onsort
            ? h("button", { type: "button", onclick: () => col.onsort(col) }, col.title, sort ? (sort === "descending" ? " ↓" : " ↑") : "")
            : col.title,
        ),
      );
    });
    return h("div", { role: "row", class: "vrow vhead", "aria-rowindex": 1, style: { width: width + "px" } }, cells);
  }

  row(i, shown, c0, width) {
    const data = this.o.row(i);
    const cells = [
      h("div", { role: "gridcell", class: "vfixed", style: { width: this.o.fixed.width + "px" }, "aria-colindex": 1 },
        data === undefined ? "…" : this.o.fixed.cell(data, i)),
      h("div", { class: "vpad", style: { width: c0 * COL + "px" }, "aria-hidden": "true" }),
    ];
    shown.forEach((col, k) => {
      const value = data === undefined ? "" : col.cell(data);
      const text = value instanceof Node ? value : value === undefined || value === null ? "" : String(value);
      cells.push(
        h("div", {
          role: "gridcell",
          class: "vcell" + (col.num ? " num" : ""),
          "aria-colindex": c0 + k + 2,
          title: typeof text === "string" && text.length > 16 ? text : undefined,
        }, text),
      );
    });
    return h("div", {
      role: "row",
      class: "vrow",
      "aria-rowindex": i + 2,
      style: { top: (i + 1) * ROW + "px", width: width + "px" },
    }, cells);
  }

  destroy() {
    this.resize.disconnect();
  }
}
