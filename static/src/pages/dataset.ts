// One dataset: what was read, its columns, a paged preview, and reading it again with other options.

import { datasetsApi, type Dataset } from "../api/datasets";
import { banner } from "../components/banner";
import { pagedTable } from "../components/table";
import { h } from "../dom";
import { bytes, count, when } from "../format";
import { t } from "../i18n";
import type { Page } from "../router";
import { lastUpload } from "./datasets";
import { deleteButton, renameButton, versionsSection } from "./dataset-manage";
import { delimiterName, encodingName } from "./read-options";
import { uploadPanel } from "./upload-panel";

const SURE = 0.9;

function detectionNote(dataset: Dataset): HTMLElement | null {
  const detection = dataset.detection;
  if (!detection) return null;
  const read = t("dataset.readAs", { encoding: encodingName(dataset.encoding), delimiter: delimiterName(dataset.delimiter, true), rows: dataset.row_count });
  if (detection.encoding_detected && detection.encoding_confidence < SURE)
    return banner("warning", t("dataset.guessTitle"), [read, t("dataset.guessBody", { percent: Math.round(detection.encoding_confidence * 100) })]);
  return banner("success", t("dataset.uploaded"), [read]);
}

function facts(dataset: Dataset): HTMLElement {
  const fact = (label: string, value: string) => h("div", { class: "fact" }, h("dt", {}, label), h("dd", {}, value));
  return h(
    "dl",
    { class: "facts" },
    fact(t("dataset.rows"), count(dataset.row_count)),
    fact(t("dataset.columns"), count(dataset.columns.length)),
    fact(t("dataset.encoding"), encodingName(dataset.encoding)),
    fact(t("dataset.delimiter"), delimiterName(dataset.delimiter)),
    fact(t("dataset.size"), bytes(dataset.bytes)),
    fact(t("dataset.version"), t("common.versionAt", { n: dataset.version, when: when(dataset.updated_at) })),
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
    h("summary", {}, t("dataset.again")),
    h("p", { class: "muted small" }, t("dataset.againHint", { version: dataset.version + 1 })),
    uploadPanel((updated) => {
      lastUpload.dataset = updated;
      navigate(`/datasets/${encodeURIComponent(updated.id)}`);
    }, id),
  );
  const remove = deleteButton(dataset, () => navigate("/datasets"));
  const rename = renameButton(dataset, (renamed) => {
    lastUpload.dataset = undefined;
    navigate(`/datasets/${encodeURIComponent(renamed.id)}`);
  });
  const aliases = dataset.aliases?.length
    ? h("p", { class: "muted small aliases" }, t("dataset.aliases", { names: dataset.aliases.map((name) => `「${name}」`).join(t("common.listSeparator")) }))
    : null;
  return {
    element: h(
      "div",
      { class: "page" },
      h(
        "header",
        { class: "page-head" },
        h("a", { href: "/datasets", class: "back", "aria-label": t("dataset.back") }, "‹"),
        h("h1", {}, dataset.name),
        h("span", { class: "spacer" }),
        rename,
        remove,
        h("a", { href: `/cards/new?dataset=${encodeURIComponent(id)}`, class: "button primary" }, t("dataset.newCard")),
      ),
      just ? detectionNote(just) : null,
      aliases,
      facts(dataset),
      again,
      await versionsSection(dataset),
      h("h2", { class: "section-title" }, t("dataset.preview")),
      preview,
    ),
  };
}
