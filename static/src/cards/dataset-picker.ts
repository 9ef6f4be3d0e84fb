// Which datasets a card reads: a list of checkboxes, with how to load each in code.

import { h } from "../dom";
import { t } from "../i18n";
import type { DatasetSummary } from "../api/datasets";

export function datasetPicker(all: DatasetSummary[], chosen: string[], onChange: (ids: string[]) => void): HTMLElement {
  const selected = new Set(chosen);
  const summary = h("summary", { class: "button ghost" });
  const label = () => {
    const names = all.filter((d) => selected.has(d.id)).map((d) => d.name);
    summary.textContent = names.length ? t("editor.datasets", { names: names.join(t("common.listSeparator")) }) : t("editor.datasetsNone");
  };
  const items = all.map((dataset) => {
    const box = h("input", { type: "checkbox", checked: selected.has(dataset.id), value: dataset.id });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(dataset.id);
      else selected.delete(dataset.id);
      label();
      onChange(all.filter((d) => selected.has(d.id)).map((d) => d.id));
    });
    return h(
      "label",
      { class: "picker-item" },
      box,
      h("span", {}, h("span", { class: "picker-name" }, dataset.name), h("code", { class: "picker-hint" }, `load_dataset("${dataset.name}")`)),
      h("span", { class: "muted small" }, t("editor.datasetRows", { n: dataset.row_count })),
    );
  });
  label();
  const picker = h(
    "details",
    { class: "picker" },
    summary,
    h("div", { class: "picker-menu" }, items.length ? items : h("p", { class: "muted small" }, t("editor.noDatasets"), h("a", { href: "/datasets" }, t("editor.uploadOne")), t("editor.noDatasetsEnd"))),
  );
  // Like a menu: a click elsewhere or Escape closes it.
  const outside = (event: MouseEvent) => {
    if (!picker.contains(event.target as Node)) picker.open = false;
  };
  picker.addEventListener("toggle", () => {
    if (picker.open) document.addEventListener("click", outside);
    else document.removeEventListener("click", outside);
  });
  picker.addEventListener("keydown", (event) => {
    if (event.key === "Escape") picker.open = false;
  });
  return picker;
}
