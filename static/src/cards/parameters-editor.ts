// A card's parameters in a dialog (the shared parameter rows): saved as a new version of the card; what
// the server refuses is shown at the parameter it names.

import type { CardParameter } from "../api/cards";
import { ParameterRows } from "../components/parameter-rows";
import { closeButton, openDialog } from "../components/dialog";
import { h } from "../dom";
import { t } from "../i18n";

// Opens the editor; `commit` saves the list (a new version of the card) and throws what the server refused.
export function openParameters(parameters: CardParameter[], commit: (parameters: CardParameter[]) => Promise<void>): void {
  const rows = new ParameterRows(parameters, t("cardParams.none"));
  const note = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "button", class: "primary" }, t("common.save"));
  const dialog = openDialog(t("cardParams.title"), [h("p", { class: "muted small" }, t("cardParams.lead")), rows.element, note], [closeButton(), save], true);
  save.addEventListener("click", async () => {
    note.textContent = "";
    const read = rows.read();
    if (!read) return;
    save.disabled = true;
    try {
      await commit(read);
      dialog.close();
    } catch (error) {
      if (!rows.refused(error)) note.textContent = (error as Error).message;
    } finally {
      save.disabled = false;
    }
  });
}
