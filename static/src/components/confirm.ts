// A modal question with a dangerous answer (delete): resolves true when the person confirms.

import { h } from "../dom";
import { t } from "../i18n";

export function confirmDanger(title: string, question: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    let confirmed = false;
    const cancel = h("button", { type: "button", class: "ghost" }, t("common.cancel"));
    const yes = h("button", { type: "button", class: "danger" }, action);
    const dialog = h("dialog", { class: "dash-dialog", "aria-label": title }, h("h2", {}, title), h("p", {}, question), h("div", { class: "dialog-actions" }, h("span", { class: "spacer" }), cancel, yes));
    cancel.addEventListener("click", () => dialog.close());
    yes.addEventListener("click", () => {
      confirmed = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
