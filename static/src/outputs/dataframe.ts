// A DataFrame output: its summary and first page come with it; further pages from the rows API.

import { api, download } from "../api/client";
import { h } from "../dom";
import { t } from "../i18n";
import { pagedTable, type Column } from "../components/table";

export interface DataFrameBundle {
  columns: Column[];
  index: string[];
  row_count: number;
  rows: unknown[][];
  rows_available: number;
  complete: boolean;
}

// Outputs sit beside the code: shorter pages than the dataset preview.
const PAGE = 20;

export function dataframeOutput(frame: DataFrameBundle, outputId: string | undefined): HTMLElement {
  const pageable = outputId && frame.complete ? frame.rows_available : frame.rows.length;
  const table = pagedTable({
    columns: frame.columns,
    indexColumns: frame.index.length,
    total: pageable,
    firstRows: frame.rows,
    fetchRows: async (offset, limit) => {
      const page = await api.get<{ rows: unknown[][] }>(`/api/outputs/${encodeURIComponent(outputId ?? "")}/rows?offset=${offset}&limit=${limit}`);
      return page.rows;
    },
  }, PAGE);
  const dataColumns = frame.columns.length - frame.index.length;
  return h(
    "div",
    { class: "output-table" },
    h("div", { class: "output-caption" }, t("output.size", { rows: frame.row_count, columns: dataColumns }),
      pageable < frame.row_count ? h("span", { class: "muted" }, t("output.browsable", { n: pageable })) : null,
      outputId && frame.complete ? csvDownloads(outputId) : null),
    table,
  );
}

// The whole table as CSV: UTF-8 with a byte order mark (Excel reads Japanese), or Shift_JIS.
function csvDownloads(outputId: string): HTMLElement {
  const problem = h("span", { class: "download-problem", role: "alert" });
  const button = (label: string, encoding: string) => {
    const el = h("button", { type: "button", class: "ghost small" }, label);
    el.addEventListener("click", () => {
      problem.textContent = "";
      download(`/api/outputs/${encodeURIComponent(outputId)}/csv?encoding=${encoding}`, "table.csv").catch((error: unknown) => {
        problem.textContent = (error as Error).message; // an ApiError speaks the user's language
      });
    });
    return el;
  };
  return h("span", { class: "downloads" }, button(t("output.csvUtf8"), "utf-8"), button(t("output.csvSjis"), "cp932"), problem);
}
