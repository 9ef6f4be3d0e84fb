// Choose a file by dropping it or with the file picker.

import { h } from "../dom";
import { t } from "../i18n";

export function dropzone(accept: string, hint: string, onFile: (file: File) => void): HTMLElement {
  const input = h("input", { type: "file", accept, class: "visually-hidden", tabindex: -1, "aria-hidden": "true" });
  input.addEventListener("change", () => {
    if (input.files?.[0]) onFile(input.files[0]);
    input.value = "";
  });
  const zone = h(
    "div",
    { class: "dropzone", tabindex: 0, role: "button", "aria-label": t("dropzone.label") },
    h("div", { class: "dropzone-icon", "aria-hidden": "true" }, "⇪"),
    h("p", {}, h("strong", {}, t("dropzone.drop")), t("dropzone.or"), h("span", { class: "link" }, t("dropzone.choose"))),
    h("p", { class: "muted small" }, hint),
    input,
  );
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer?.files[0];
    if (file) onFile(file);
  });
  return zone;
}
