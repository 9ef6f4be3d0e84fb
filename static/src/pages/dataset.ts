// One dataset: what was read, its columns, a paged preview, and reading it again with other options.

import { datasetsApi, type Dataset } from "../api/datasets";
import { banner } from "../components/banner";
import { pagedTable } from "../components/table";
import { h } from "../dom";
import { bytes, count, when } from "../format";
import type { Page } from "../router";
import { lastUpload } from "./datasets";
import { delimiterName } from "./read-options";
import { uploadPanel } from "./upload-panel";

const SURE = 0.9;

function detectionNote(dataset: Dataset): HTMLElement | null {
  const detection = dataset.detection;
  if (!detection) return null;
  const read = `Read as ${dataset.encoding}, ${delimiterName(dataset.delimiter).toLowerCase()}-separated: ${count(dataset.row_count)} rows.`;
  if (detection.encoding_detected && detection.encoding_confidence < SURE)
    return banner("warning", "Check the preview: the encoding was a guess.", [
      `${read} We were only ${Math.round(detection.encoding_confidence * 100)}% sure of the encoding. If the text below looks garbled, read the file again with the right encoding under “Read again”.`,
    ]);
  return banner("success", "Uploaded.", [read]);
}

function facts(dataset: Dataset): HTMLElement {
  const fact = (label: string, value: string) => h("div", { class: "fact" }, h("dt", {}, label), h("dd", {}, value));
  return h(
    "dl",
    { class: "facts" },
    fact("Rows", count(dataset.row_count)),
    fact("Columns", count(dataset.columns.length)),
    fact("Encoding", dataset.encoding),
    fact("Delimiter", delimiterName(dataset.delimiter)),
    fact("Size", bytes(dataset.bytes)),
    fact("Version", `v${dataset.version} · ${when(dataset.updated_at)}`),
  );
}

export async function datasetPage(id: string, navigate: (to: string) => void): Promise<Page> {
  const just = lastUpload.dataset?.id === id ? lastUpload.dataset : undefined;
  const dataset = just ?? (await datasetsApi.get(id));
  lastUpload.dataset = undefined;
  const columns = dataset.columns.map((c) => ({ name: c.name, dtype: c.type }));
  const preview = pagedTable({
    columns,
    total: dataset.row_count,
    fetchRows: (offset, limit) => datasetsApi.preview(id, offset, limit).then((page) => page.rows),
  });
  const again = h(
    "details",
    { class: "read-again", open: !!just?.detection && just.detection.encoding_confidence < SURE },
    h("summary", {}, "Read again / upload a new version"),
    h("p", { class: "muted small" }, "A new upload of the same data (or the same file read with other options) becomes version ", String(dataset.version + 1), "; cards read the newest version."),
    uploadPanel((updated) => {
      lastUpload.dataset = updated;
      navigate(`/datasets/${encodeURIComponent(updated.id)}`);
    }, id),
  );
  const remove = h("button", { type: "button", class: "ghost" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the dataset “${dataset.name}” and all its versions? Cards that load it will fail.`)) return;
    await datasetsApi.remove(id);
    navigate("/datasets");
  });
  return {
    element: h(
      "div",
      { class: "page" },
      h(
        "header",
        { class: "page-head" },
        h("a", { href: "/datasets", class: "back", "aria-label": "All datasets" }, "‹"),
        h("h1", {}, dataset.name),
        h("span", { class: "spacer" }),
        remove,
        h("a", { href: `/cards/new?dataset=${encodeURIComponent(id)}`, class: "button primary" }, "New card from this dataset"),
      ),
      just ? detectionNote(just) : null,
      facts(dataset),
      again,
      h("h2", { class: "section-title" }, "Preview"),
      preview,
    ),
  };
}
