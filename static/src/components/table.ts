// A table shown a page at a time; pages come from the server (dataset previews, DataFrame outputs).

import { clear, h } from "../dom";
import { t } from "../i18n";
import { asText, cellFormat, type CellFormat } from "./cell-format";

export interface Column {
  name: string;
  dtype?: string;
}

export interface TableSource {
  columns: Column[];
  // How many leading columns are the index (shown as row headers).
  indexColumns?: number;
  total: number;
  // Rows already at hand from offset 0 (a DataFrame output carries its first page).
  firstRows?: unknown[][];
  fetchRows(offset: number, limit: number): Promise<unknown[][]>;
}

const NUMERIC = /^(u?int|float|double|decimal)/i;

function cell(value: unknown, header: boolean, format: CellFormat): HTMLElement {
  const el = h(header ? "th" : "td", header ? { scope: "row" } : {}, format(value));
  if (value === null || value === undefined) el.classList.add("null");
  else if (typeof value === "number") el.classList.add("num");
  return el;
}

export function pagedTable(source: TableSource, pageSize = 50): HTMLElement {
  const index = source.indexColumns ?? 0;
  const formats = source.columns.map(cellFormat);
  const body = h("tbody");
  const status = h("span", { class: "pager-status" });
  const prev = h("button", { type: "button", class: "ghost small", "aria-label": t("table.prevPage") }, t("table.prev"));
  const next = h("button", { type: "button", class: "ghost small", "aria-label": t("table.nextPage") }, t("table.next"));
  const error = h("span", { class: "pager-error", role: "alert" });
  const buttons = h("span", { class: "pager-buttons" }, prev, next);
  let offset = 0;
  // Rows on the page shown: fewer than pageSize when the server sends a smaller page (wide tables).
  let shown = 0;

  const show = (rows: unknown[][]) => {
    clear(body);
    shown = rows.length;
    for (const row of rows) body.append(h("tr", {}, ...row.map((value, i) => cell(value, i < index, formats[i] ?? asText))));
    const last = Math.min(offset + rows.length, source.total);
    status.textContent = source.total ? t("table.range", { from: offset + 1, to: last, total: source.total }) : t("table.noRows");
    prev.disabled = offset === 0;
    next.disabled = last >= source.total;
    buttons.hidden = source.total <= pageSize;
  };

  const go = async (to: number) => {
    prev.disabled = next.disabled = true;
    error.textContent = "";
    try {
      const rows = to === 0 && source.firstRows ? source.firstRows.slice(0, pageSize) : await source.fetchRows(to, pageSize);
      offset = to;
      show(rows);
    } catch (e) {
      error.textContent = (e as Error).message;
      prev.disabled = offset === 0;
      next.disabled = offset + shown >= source.total;
    }
  };
  prev.addEventListener("click", () => void go(Math.max(0, offset - pageSize)));
  next.addEventListener("click", () => void go(offset + Math.max(shown, 1)));

  const head = h(
    "tr",
    {},
    ...source.columns.map((column, i) =>
      h("th", { scope: "col", class: i < index ? "index" : NUMERIC.test(column.dtype ?? "") ? "num" : null, title: column.dtype ?? null }, column.name, column.dtype ? h("code", { class: "dtype" }, column.dtype) : null),
    ),
  );
  void go(0);
  return h(
    "div",
    { class: "paged-table" },
    h("div", { class: "table-scroll" }, h("table", { class: "data" }, h("thead", {}, head), body)),
    h("div", { class: "pager" }, status, error, buttons),
  );
}
