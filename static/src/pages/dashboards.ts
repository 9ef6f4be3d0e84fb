// The list of dashboards: mine and those shared with me, with what I may do; a new one.

import { dashboardsApi } from "../api/dashboards";
import { h } from "../dom";
import { when } from "../format";
import type { Page } from "../router";

const ACCESS = { owner: "Owner", edit: "Can edit", view: "Can view" };

export async function dashboardsPage(go: (to: string) => void): Promise<Page> {
  const dashboards = await dashboardsApi.list();
  const title = h("input", { type: "text", placeholder: "New dashboard title", "aria-label": "New dashboard title", maxlength: 200 });
  const create = h("button", { type: "submit", class: "primary" }, "+ New dashboard");
  const form = h("form", { class: "fields inline-create" }, title, create);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!title.value.trim()) return title.focus();
    create.disabled = true;
    try {
      const made = await dashboardsApi.create(title.value.trim());
      go(`/dashboards/${made.id}`);
    } finally {
      create.disabled = false;
    }
  });
  const body = dashboards.length
    ? h(
        "table",
        { class: "list" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Cards"), h("th", { scope: "col" }, "Access"), h("th", { scope: "col" }, "Updated"))),
        h(
          "tbody",
          {},
          dashboards.map((d) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `/dashboards/${encodeURIComponent(d.id)}`, class: "strong" }, d.document.title)),
              h("td", { class: "muted" }, String(d.document.cards.length)),
              h("td", {}, h("span", { class: `access ${d.access}` }, ACCESS[d.access])),
              h("td", { class: "muted" }, when(d.updated_at)),
            ),
          ),
        ),
      )
    : h("div", { class: "empty" }, h("h2", {}, "No dashboards yet"), h("p", { class: "muted" }, "A dashboard puts cards side by side; colleagues you share it with watch it update live."));
  return { element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, "Dashboards"), h("span", { class: "spacer" }), form), body) };
}
