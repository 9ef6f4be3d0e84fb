// The list of cards, a page at a time: the most recently changed first, or by title; searchable.

import { cardsApi, type CardSummary } from "../api/cards";
import { datasetsApi } from "../api/datasets";
import { pagedList } from "../components/paged-list";
import { h } from "../dom";
import { ago, when } from "../format";
import { t } from "../i18n";
import type { Page } from "../router";

export async function cardsPage(): Promise<Page> {
  const datasets = await datasetsApi.list();
  const names = new Map(datasets.map((d) => [d.id, d.name]));
  const newCard = h("a", { href: "/cards/new", class: "button primary" }, t("cards.new"));
  const body = await pagedList<CardSummary>({
    load: cardsApi.page,
    head: h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("cards.col.title")), h("th", { scope: "col" }, t("cards.col.datasets")), h("th", { scope: "col" }, t("cards.col.version")), h("th", { scope: "col" }, t("cards.col.updated")))),
    row: (card, tags) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `/cards/${encodeURIComponent(card.id)}`, class: "strong" }, card.title), tags(card.tags)),
        h("td", { class: "muted" }, card.datasets.map((id) => names.get(id) ?? t("cards.notShared")).join(t("common.listSeparator")) || "—"),
        h("td", { class: "muted" }, t("common.version", { n: card.version })),
        h("td", { class: "muted", title: when(card.updated_at) }, ago(card.updated_at)),
      ),
    empty: () => h("div", { class: "empty" }, h("h2", {}, t("cards.empty")), h("p", { class: "muted" }, t("cards.emptyHint")), newCard.cloneNode(true)),
  });
  return {
    element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, t("cards.title")), h("span", { class: "spacer" }), newCard), body),
  };
}
