// A progress bar for an upload: bytes sent of the total, then "Reading…" while the server parses.

import { h } from "../dom";
import { bytes } from "../format";
import { t } from "../i18n";

export class UploadProgress {
  private bar = h("progress", { max: 1, value: 0, "aria-label": t("upload.progress") });
  private label = h("span", { class: "progress-label" });
  readonly cancel = h("button", { type: "button", class: "ghost small" }, t("common.cancel"));
  readonly element: HTMLElement;

  constructor(fileName: string) {
    this.element = h("div", { class: "upload-progress" }, h("div", { class: "progress-head" }, h("strong", { class: "file-name" }, fileName), this.label, this.cancel), this.bar);
  }

  update(sent: number, total: number): void {
    this.bar.max = total || 1;
    this.bar.value = sent;
    this.label.textContent = sent >= total ? t("upload.reading") : t("upload.sent", { sent: bytes(sent), total: bytes(total), percent: Math.floor((sent / (total || 1)) * 100) });
    if (sent >= total) this.bar.removeAttribute("value"); // indeterminate while the server parses
  }
}
