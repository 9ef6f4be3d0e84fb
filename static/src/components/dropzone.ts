// Choose a file by dropping it or with the file picker.

import { h } from "../dom";

export function dropzone(accept: string, hint: string, onFile: (file: File) => void): HTMLElement {
  const input = h("input", { type: "file", accept, class: "visually-hidden", tabindex: -1, "aria-hidden": "true" });
  input.addEventListener("change", () => {
    if (input.files?.[0]) onFile(input.files[0]);
    input.value = "";
  });
  const zone = h(
    "div",
    { class: "dropzone", tabindex: 0, role: "button", "aria-label": "Upload a CSV file: drop it here or press Enter to choose" },
    h("div", { class: "dropzone-icon", "aria-hidden": "true" }, "⇪"),
    h("p", {}, h("strong", {}, "Drop a CSV file here"), " or ", h("span", { class: "link" }, "choose one")),
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
