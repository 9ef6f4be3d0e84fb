// The list of cards, newest first.

import { cardsApi } from "../api/cards";
import { datasetsApi } from "../api/datasets";
import { h } from "../dom";
import { when } from "../format";
import type { Page } from "../router";

export async function cardsPage(): Promise<Page> {
  const [cards, datasets] = await Promise.all([cardsApi.list(), datasetsApi.list()]);
  const names = new Map(datasets.map((d) => [d.id, d.name]));
  const newCard = h("a", { href: "/cards/new", class: "button primary" }, "+ New card");
  const body = cards.length
    ? h(
        "table",
        { class: "list" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Datasets"), h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Updated"))),
        h(
          "tbody",
          {},
          cards.map((card) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `/cards/${encodeURIComponent(card.id)}`, class: "strong" }, card.title)),
              h("td", { class: "muted" }, card.datasets.map((id) => names.get(id) ?? "(not shared with you)").join(", ") || "—"),
              h("td", { class: "muted" }, `v${card.version}`),
              h("td", { class: "muted" }, when(card.updated_at)),
            ),
          ),
        ),
      )
    : h("div", { class: "empty" }, h("h2", {}, "No cards yet"), h("p", { class: "muted" }, "A card is a short piece of Python that turns a dataset into a table or a chart."), newCard.cloneNode(true));
  return {
    element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, "Cards"), h("span", { class: "spacer" }), newCard), body),
  };
}
