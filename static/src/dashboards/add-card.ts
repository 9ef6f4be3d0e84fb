// Choosing a saved card to put on a dashboard, or starting a new one in the card editor.

import { cardsApi } from "../api/cards";
import { h } from "../dom";
import { when } from "../format";

// Resolves with the chosen card's id and title, or null when the dialog is closed.
export async function chooseCard(onDashboard: Set<string>, newCardHref: string): Promise<[string, string] | null> {
  const cards = await cardsApi.list();
  return new Promise((resolve) => {
    let chosen: [string, string] | null = null;
    const items = cards.map((card) => {
      const pick = h("button", { type: "button", class: "card-choice" }, h("span", { class: "strong" }, card.title || "Untitled card"), h("span", { class: "muted small" }, `v${card.version} · ${when(card.updated_at)}${onDashboard.has(card.id) ? " · already here" : ""}`));
      pick.addEventListener("click", () => {
        chosen = [card.id, card.title || "Untitled card"];
        dialog.close();
      });
      return h("li", {}, pick);
    });
    const cancel = h("button", { type: "button", class: "ghost" }, "Cancel");
    const dialog = h(
      "dialog",
      { class: "dash-dialog", "aria-label": "Add a card" },
      h("h2", {}, "Add a card"),
      items.length ? h("ul", { class: "card-choices" }, items) : h("p", { class: "muted" }, "You have no saved cards yet."),
      h("p", { class: "muted small dialog-hint" }, "A new card opens in the card editor (unsaved layout changes here are dropped); once it is saved, its Add to dashboard button puts it here."),
      h("div", { class: "dialog-actions" }, h("a", { href: newCardHref, class: "button" }, "+ Write a new card"), h("span", { class: "spacer" }), cancel),
    );
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (event) => (event.target as Element).closest("a") && dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(chosen);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
