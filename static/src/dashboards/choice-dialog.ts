// A modal list of choices (a card, a dashboard): resolves with the one picked, or null when closed.

import { h } from "../dom";
import { t } from "../i18n";

export interface Choice<T> {
  value: T;
  title: string;
  detail: string;
}

export function choose<T>(label: string, choices: Choice<T>[], empty: string, link: HTMLAnchorElement, hint?: string): Promise<T | null> {
  return new Promise((resolve) => {
    let chosen: T | null = null;
    const cancel = h("button", { type: "button", class: "ghost" }, t("common.cancel"));
    const items = choices.map((choice) => {
      const pick = h("button", { type: "button", class: "card-choice" }, h("span", { class: "strong" }, choice.title), h("span", { class: "muted small" }, choice.detail));
      pick.addEventListener("click", () => {
        chosen = choice.value;
        dialog.close();
      });
      return h("li", {}, pick);
    });
    const dialog = h(
      "dialog",
      { class: "dash-dialog", "aria-label": label },
      h("h2", {}, label),
      items.length ? h("ul", { class: "card-choices" }, items) : h("p", { class: "muted" }, empty),
      hint ? h("p", { class: "muted small dialog-hint" }, hint) : null,
      h("div", { class: "dialog-actions" }, link, h("span", { class: "spacer" }), cancel),
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
