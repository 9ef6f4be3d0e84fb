// A DataFrame output: its summary and first page come with it; further pages from the rows API.

import { api } from "../api/client";
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
      pageable < frame.row_count ? h("span", { class: "muted" }, t("output.browsable", { n: pageable })) : null),
    table,
  );
}
