// Choosing a saved card to put on a dashboard, or starting a new one in the card editor.

import { cardsApi } from "../api/cards";
import { h } from "../dom";
import { when } from "../format";
import { choose } from "./choice-dialog";

// Resolves with the chosen card's id and title, or null when the dialog is closed.
export async function chooseCard(onDashboard: Set<string>, newCardHref: string): Promise<[string, string] | null> {
  const cards = await cardsApi.list();
  return choose<[string, string]>(
    "Add a card",
    cards.map((card) => ({
      value: [card.id, card.title || "Untitled card"],
      title: card.title || "Untitled card",
      detail: `v${card.version} · ${when(card.updated_at)}${onDashboard.has(card.id) ? " · already here" : ""}`,
    })),
    "You have no saved cards yet.",
    h("a", { href: newCardHref, class: "button" }, "+ Write a new card"),
    "A new card opens in the card editor (unsaved layout changes here are dropped); once it is saved, its Add to dashboard button puts it here.",
  );
}
