// A modal dialog: a title, its content and actions; removed from the page when closed. `confirmDialog`
// asks one question and resolves true when the named action was chosen.

import "./dialog.css";
import { h } from "../dom";
import { t } from "../i18n";

export function openDialog(title: string, content: (Node | string | null)[], actions: HTMLElement[], wide = false): HTMLDialogElement {
  const dialog = h(
    "dialog",
    { class: `bi-dialog${wide ? " wide" : ""}`, "aria-label": title },
    h("h2", {}, title),
    ...content.map((part) => (typeof part === "string" ? h("p", {}, part) : part)),
    h("div", { class: "dialog-actions" }, h("span", { class: "spacer" }), ...actions),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// A button that closes `dialog` (Cancel, Close).
export function closeButton(label = t("common.cancel")): HTMLButtonElement {
  const button = h("button", { type: "button", class: "ghost" }, label);
  button.addEventListener("click", () => button.closest("dialog")?.close());
  return button;
}

export function confirmDialog(title: string, content: (Node | string | null)[], action: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    let chosen = false;
    const yes = h("button", { type: "button", class: danger ? "danger" : "primary" }, action);
    const dialog = openDialog(title, content, [closeButton(), yes]);
    yes.addEventListener("click", () => {
      chosen = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => resolve(chosen));
  });
}

// A secret shown this once (a one-time password, a token), selectable, with a copy button where the
// clipboard is there (https and localhost).
export function secretBox(value: string, label: string): HTMLElement {
  const copy = navigator.clipboard ? h("button", { type: "button", class: "ghost small" }, t("common.copy")) : null;
  copy?.addEventListener("click", () => void navigator.clipboard.writeText(value).then(() => (copy.textContent = t("common.copied"))));
  return h("div", { class: "secret" }, h("code", { "aria-label": label, class: "secret-value" }, value), copy);
}
