// The dashboards I own and those shared with me, with my access; creating a new one.

import "../dashboards/dashboards.css";
import { dashboardsApi, type Access } from "../api/dashboards";
import { h } from "../dom";
import { when } from "../format";
import type { Page } from "../router";

const ACCESS: Record<Access, string> = { owner: "Owner", edit: "Can edit", view: "Can view" };

export async function dashboardsPage(go: (path: string) => void): Promise<Page> {
  const dashboards = await dashboardsApi.list();
  const title = h("input", { name: "title", placeholder: "New dashboard title", "aria-label": "New dashboard title", maxlength: 200, required: true });
  const error = h("p", { class: "form-error", role: "alert" });
  const create = h("form", { class: "dash-create" }, title, h("button", { type: "submit", class: "primary" }, "+ New dashboard"), error);
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await dashboardsApi.create(title.value.trim());
      go(`/dashboards/${encodeURIComponent(created.id)}`);
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  });
  const body = dashboards.length
    ? h(
        "table",
        { class: "list" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Cards"), h("th", { scope: "col" }, "Your access"), h("th", { scope: "col" }, "Updated"))),
        h(
          "tbody",
          {},
          dashboards.map((d) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `/dashboards/${encodeURIComponent(d.id)}`, class: "strong" }, d.document.title), d.document.description ? h("div", { class: "muted small" }, d.document.description) : null),
              h("td", { class: "muted" }, String(d.document.cards.length)),
              h("td", {}, h("span", { class: `pill ${d.access}` }, ACCESS[d.access])),
              h("td", { class: "muted" }, when(d.updated_at)),
            ),
          ),
        ),
      )
    : h("div", { class: "empty" }, h("h2", {}, "No dashboards yet"), h("p", { class: "muted" }, "A dashboard puts cards side by side on a grid and keeps them live for everyone you share it with."));
  return { element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, "Dashboards"), h("span", { class: "spacer" }), create), body) };
}
