// Uploading a CSV: drop zone or file picker, read options, a progress bar, and clear messages for
// files that are too large (413) or cannot be read (422, with the line).

import { datasetsApi, type Dataset } from "../api/datasets";
import { ApiError } from "../api/errors";
import { banner } from "../components/banner";
import { dropzone } from "../components/dropzone";
import { UploadProgress } from "../components/progress";
import { h } from "../dom";
import { bytes } from "../format";
import { readOptionsFields } from "./read-options";

export function uploadProblem(error: unknown): HTMLElement {
  if (!(error instanceof ApiError)) return banner("error", "The upload failed.", [String(error)]);
  if (error.code === "aborted") return banner("info", "Upload cancelled.");
  if (error.status === 413) {
    const limit = error.details.limit_bytes;
    return banner("error", "This file is too large to upload.", [
      typeof limit === "number" ? `The largest file this server takes is ${bytes(limit)}.` : "The server refused a file of this size.",
      "Split it into smaller files, or drop columns you do not need, and upload again.",
    ]);
  }
  if (error.status === 422) {
    const line = error.details.line;
    return banner(
      "error",
      typeof line === "number" ? `The file could not be read: a problem on line ${line}.` : "The file could not be read.",
      [error.message, "If it uses another encoding or delimiter, pick them under “Reading options” and upload again. Nothing was stored."],
    );
  }
  return banner("error", "The upload failed.", [error.message]);
}

// `into`: upload a new version of that dataset instead of a new dataset.
export function uploadPanel(onUploaded: (dataset: Dataset) => void, into?: string): HTMLElement {
  const status = h("div", { class: "upload-status" });
  const name = h("input", { name: "name", placeholder: "From the file name", maxlength: 200 });
  const options = readOptionsFields();
  const details = h(
    "details",
    { class: "read-options" },
    h("summary", {}, "Reading options"),
    h("div", { class: "fields" }, into ? null : h("label", { class: "field" }, "Dataset name", name), options.element),
  );

  const start = (file: File) => {
    const chosen = { ...options.value(), name: into ? undefined : name.value.trim() || file.name.replace(/\.[^.]*$/, "") };
    const progress = new UploadProgress(file.name);
    status.replaceChildren(progress.element);
    const transfer = datasetsApi.upload(file, chosen, (sent, total) => progress.update(sent, total), into);
    progress.cancel.addEventListener("click", () => transfer.abort());
    transfer.done.then(
      (dataset) => {
        status.replaceChildren();
        onUploaded(dataset);
      },
      (error) => {
        status.replaceChildren(uploadProblem(error));
        if (error instanceof ApiError && error.status === 422) details.open = true;
      },
    );
  };

  return h(
    "section",
    { class: "upload-panel" },
    dropzone(".csv,.tsv,.txt,text/csv", "CSV or TSV · UTF-8, Shift_JIS (CP932) or EUC-JP · comma, tab, semicolon or pipe", start),
    details,
    status,
  );
}
