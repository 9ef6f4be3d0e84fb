// The datasets: upload a new one, and the list.

import { datasetsApi, type Dataset } from "../api/datasets";
import { h } from "../dom";
import { bytes, count, when } from "../format";
import type { Page } from "../router";
import { delimiterName } from "./read-options";
import { uploadPanel } from "./upload-panel";

// What the last upload detected, for the page that shows the new dataset.
export const lastUpload: { dataset?: Dataset } = {};

function row(dataset: Dataset): HTMLElement {
  return h(
    "tr",
    {},
    h("td", {}, h("a", { href: `/datasets/${encodeURIComponent(dataset.id)}`, class: "strong" }, dataset.name)),
    h("td", { class: "num" }, count(dataset.row_count)),
    h("td", { class: "num" }, count(dataset.columns.length)),
    h("td", { class: "muted" }, `${dataset.encoding} · ${delimiterName(dataset.delimiter)}`),
    h("td", { class: "num muted" }, bytes(dataset.bytes)),
    h("td", { class: "muted" }, `v${dataset.version} · ${when(dataset.updated_at)}`),
  );
}

export async function datasetsPage(navigate: (to: string) => void): Promise<Page> {
  const datasets = await datasetsApi.list();
  const upload = uploadPanel((dataset) => {
    lastUpload.dataset = dataset;
    navigate(`/datasets/${encodeURIComponent(dataset.id)}`);
  });
  const list = datasets.length
    ? h(
        "table",
        { class: "list" },
        h("thead", {}, h("tr", {}, ...["Name", "Rows", "Columns", "Read as", "Size", "Version"].map((t, i) => h("th", { scope: "col", class: i === 1 || i === 2 || i === 4 ? "num" : null }, t)))),
        h("tbody", {}, datasets.map(row)),
      )
    : h("div", { class: "empty" }, h("h2", {}, "No datasets yet"), h("p", { class: "muted" }, "Upload a CSV above; cards read it with load_dataset(\"name\")."));
  return {
    element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, "Datasets")), upload, h("h2", { class: "section-title" }, "All datasets"), list),
  };
}
