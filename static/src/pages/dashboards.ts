// The dashboards I own and those shared with me, with my access, a page at a time; creating a new one.

import "../dashboards/dashboards.css";
import { dashboardsApi, type Access, type DashboardSummary } from "../api/dashboards";
import { pagedList } from "../components/paged-list";
import { h } from "../dom";
import { ago, count, when } from "../format";
import { t, type MessageKey } from "../i18n";
import type { Page } from "../router";

const ACCESS: Record<Access, MessageKey> = { owner: "access.owner", edit: "access.edit", view: "access.view" };

export async function dashboardsPage(go: (path: string) => void): Promise<Page> {
  const title = h("input", { name: "title", placeholder: t("dashboards.newTitle"), "aria-label": t("dashboards.newTitle"), maxlength: 200, required: true });
  const error = h("p", { class: "form-error", role: "alert" });
  const create = h("form", { class: "dash-create" }, title, h("button", { type: "submit", class: "primary" }, t("dashboards.new")), error);
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await dashboardsApi.create(title.value.trim());
      go(`/dashboards/${encodeURIComponent(created.id)}`);
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  });
  // Import: a document exported here or elsewhere (its uid updates the dashboard it names, else a new one).
  const file = h("input", { type: "file", accept: ".json,application/json", hidden: true, "aria-label": t("dashboards.importFile") });
  const importButton = h("button", { type: "button", class: "ghost" }, t("dashboards.import"));
  importButton.addEventListener("click", () => file.click());
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    file.value = "";
    if (!chosen) return;
    error.textContent = "";
    let document: unknown;
    try {
      document = JSON.parse(await chosen.text());
    } catch {
      error.textContent = t("dashboards.importNotJson", { name: chosen.name });
      return;
    }
    try {
      const imported = await dashboardsApi.importDocument(document);
      go(`/dashboards/${encodeURIComponent(imported.id)}`);
    } catch (e) {
      error.textContent = t("dashboards.importFailed", { name: chosen.name, reason: (e as Error).message });
    }
  });
  const body = await pagedList<DashboardSummary>({
    load: dashboardsApi.page,
    head: h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("dashboards.col.title")), h("th", { scope: "col", class: "num" }, t("dashboards.col.cards")), h("th", { scope: "col" }, t("dashboards.col.access")), h("th", { scope: "col" }, t("dashboards.col.updated")))),
    row: (d, tags) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `/dashboards/${encodeURIComponent(d.id)}`, class: "strong" }, d.title), d.description ? h("div", { class: "muted small" }, d.description) : null, tags(d.tags)),
        h("td", { class: "num muted" }, count(d.card_count)),
        h("td", {}, h("span", { class: `pill ${d.access}` }, t(ACCESS[d.access]))),
        h("td", { class: "muted", title: when(d.updated_at) }, ago(d.updated_at)),
      ),
    empty: () => h("div", { class: "empty" }, h("h2", {}, t("dashboards.empty")), h("p", { class: "muted" }, t("dashboards.emptyHint"))),
    choices: {
      label: t("dashboards.filter"),
      options: [
        { label: t("dashboards.filter.all"), params: { shared: false } },
        { label: t("dashboards.filter.shared"), params: { shared: true } },
      ],
    },
  });
  return { element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, t("dashboards.title")), h("span", { class: "spacer" }), importButton, file, create), body) };
}
