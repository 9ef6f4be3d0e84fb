// The datasets: upload a new one, and the list.

import { datasetsApi, type Dataset, type DatasetSummary } from "../api/datasets";
import { pagedList } from "../components/paged-list";
import { h } from "../dom";
import { ago, bytes, count, when } from "../format";
import { t, tWith } from "../i18n";
import type { Page } from "../router";
import { delimiterName, encodingName } from "./read-options";
import { uploadPanel } from "./upload-panel";

// What the last upload detected, for the page that shows the new dataset.
export const lastUpload: { dataset?: Dataset } = {};

function row(dataset: DatasetSummary): HTMLElement {
  return h(
    "tr",
    {},
    h("td", {}, h("a", { href: `/datasets/${encodeURIComponent(dataset.id)}`, class: "strong" }, dataset.name)),
    h("td", { class: "num" }, count(dataset.row_count)),
    h("td", { class: "num" }, count(dataset.column_count)),
    h("td", { class: "muted" }, `${encodingName(dataset.encoding)} · ${delimiterName(dataset.delimiter)}`),
    h("td", { class: "num muted" }, bytes(dataset.bytes)),
    h("td", { class: "muted", title: when(dataset.updated_at) }, t("common.versionAt", { n: dataset.version, when: ago(dataset.updated_at) })),
  );
}

export async function datasetsPage(navigate: (to: string) => void): Promise<Page> {
  const upload = uploadPanel((dataset) => {
    lastUpload.dataset = dataset;
    navigate(`/datasets/${encodeURIComponent(dataset.id)}`);
  });
  const list = await pagedList<DatasetSummary>({
    load: datasetsApi.page,
    head: h("thead", {}, h("tr", {}, ...(["datasets.col.name", "datasets.col.rows", "datasets.col.columns", "datasets.col.readAs", "datasets.col.size", "datasets.col.version"] as const).map((key, i) => h("th", { scope: "col", class: i === 1 || i === 2 || i === 4 ? "num" : null }, t(key))))),
    row,
    empty: () => h("div", { class: "empty" }, h("h2", {}, t("datasets.empty")), h("p", { class: "muted" }, ...tWith("datasets.emptyHint", { code: h("code", {}, t("datasets.emptyCode")) }))),
  });
  return {
    element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, t("datasets.title"))), upload, h("h2", { class: "section-title" }, t("datasets.all")), list),
  };
}
