// Choosing a saved card to put on a dashboard, or starting a new one in the card editor.

import { cardsApi } from "../api/cards";
import { h } from "../dom";
import { ago } from "../format";
import { t } from "../i18n";
import { choose } from "./choice-dialog";

// Resolves with the chosen card's id and title, or null when the dialog is closed.
export async function chooseCard(onDashboard: Set<string>, newCardHref: string): Promise<[string, string] | null> {
  const cards = await cardsApi.list();
  return choose<[string, string]>(
    t("addCard.title"),
    cards.map((card) => ({
      value: [card.id, card.title || t("common.untitledCard")],
      title: card.title || t("common.untitledCard"),
      detail: `${t("common.versionAt", { n: card.version, when: ago(card.updated_at) })}${onDashboard.has(card.id) ? t("addCard.already") : ""}`,
    })),
    t("addCard.none"),
    h("a", { href: newCardHref, class: "button" }, t("addCard.write")),
    t("addCard.hint"),
  );
}
