// Managing a dataset from its page: rename it (the old name stays an alias, so cards loading it by that
// name keep working), delete it after seeing the cards that read it, and its versions (who uploaded each, when).

import "./manage.css";
import { cardsApi } from "../api/cards";
import { datasetsApi, type Dataset, type DatasetVersion } from "../api/datasets";
import { closeButton, confirmDialog, openDialog } from "../components/dialog";
import { h } from "../dom";
import { bytes, count, when } from "../format";
import { t, tWith } from "../i18n";

const CARDS_SHOWN = 50;

export function renameButton(dataset: Dataset, renamed: (dataset: Dataset) => void): HTMLButtonElement {
  const button = h("button", { type: "button", class: "ghost" }, t("dataset.rename"));
  button.addEventListener("click", () => {
    const name = h("input", { name: "name", value: dataset.name, required: true, maxlength: 100 });
    const error = h("p", { class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", class: "primary", form: "dataset-rename" }, t("dataset.renameSubmit"));
    const form = h("form", { class: "stack", id: "dataset-rename" }, h("label", {}, t("dataset.newName"), name), h("p", { class: "muted small" }, ...tWith("dataset.renameHint", { code: h("code", {}, `load_dataset(${JSON.stringify(dataset.name)})`) }, { name: dataset.name })), error);
    const dialog = openDialog(t("dataset.renameTitle", { name: dataset.name }), [form], [closeButton(), submit]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.textContent = "";
      try {
        const updated = await datasetsApi.rename(dataset.id, name.value.trim());
        dialog.close();
        renamed(updated);
      } catch (e) {
        error.textContent = (e as Error).message;
      } finally {
        submit.disabled = false;
      }
    });
    name.select();
  });
  return button;
}

// Deletes after a confirmation that lists the cards (that I can see) reading the dataset.
export function deleteButton(dataset: Dataset, deleted: () => void): HTMLButtonElement {
  const button = h("button", { type: "button", class: "ghost" }, t("common.delete"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const readers = await cardsApi.page({ dataset: dataset.id, limit: CARDS_SHOWN });
      const total = readers.total ?? readers.items.length + (readers.next ? 1 : 0);
      const list = readers.items.length
        ? [h("p", {}, t("dataset.deleteReaders", { n: total })),
           h("ul", { class: "reader-list" }, ...readers.items.map((card) => h("li", {}, h("a", { href: `/cards/${encodeURIComponent(card.id)}`, target: "_blank" }, card.title)))),
           readers.next ? h("p", { class: "muted small" }, t("dataset.deleteMoreReaders")) : null]
        : [h("p", { class: "muted" }, t("dataset.deleteNoReaders"))];
      if (!(await confirmDialog(t("dataset.deleteTitle", { name: dataset.name }), [t("dataset.confirmDelete", { name: dataset.name }), ...list], t("common.delete")))) return;
      await datasetsApi.remove(dataset.id);
      deleted();
    } catch (error) {
      openDialog(t("dataset.deleteFailed"), [(error as Error).message], [closeButton(t("common.close"))]);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// Its versions, newest first, a page at a time.
export async function versionsSection(dataset: Dataset): Promise<HTMLElement> {
  const body = h("tbody", {});
  const more = h("button", { type: "button", class: "list-more", hidden: true }, t("list.more"));
  let next: string | null = null;
  const row = (version: DatasetVersion) =>
    h("tr", { "data-version": version.version },
      h("td", { class: "strong" }, t("common.version", { n: version.version }), version.version === dataset.version ? h("span", { class: "pill on" }, t("dataset.currentVersion")) : null),
      h("td", { class: "muted" }, when(version.created_at)),
      h("td", {}, version.created_by_name ?? t("cardHistory.unknownAuthor")),
      h("td", { class: "num" }, count(version.row_count)),
      h("td", { class: "num muted" }, bytes(version.bytes)));
  const load = async () => {
    const page = await datasetsApi.versions(dataset.id, next);
    body.append(...page.items.map(row));
    next = page.next;
    more.hidden = !next;
  };
  more.addEventListener("click", () => void load());
  await load();
  return h("section", { class: "dataset-versions", "aria-label": t("dataset.versions") },
    h("h2", { class: "section-title" }, t("dataset.versions")),
    h("table", { class: "list" }, h("thead", {}, h("tr", {}, ...(["dataset.col.version", "dataset.col.uploadedAt", "dataset.col.uploadedBy", "dataset.col.rows", "dataset.col.size"] as const).map((key, i) => h("th", { scope: "col", class: i >= 3 ? "num" : null }, t(key))))), body),
    more);
}
