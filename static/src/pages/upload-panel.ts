// Uploading a CSV: drop zone or file picker, read options, a progress bar, and clear messages for
// files that are too large (413) or cannot be read (422, with the line).

import { datasetsApi, type Dataset } from "../api/datasets";
import { ApiError } from "../api/errors";
import { banner } from "../components/banner";
import { dropzone } from "../components/dropzone";
import { UploadProgress } from "../components/progress";
import { h } from "../dom";
import { bytes } from "../format";
import { encodingName, readOptionsFields } from "./read-options";
import { locale, t, type MessageKey } from "../i18n";

// The reasons the server gives for a CSV it cannot read (details.reason, server/csv_import.py).
const CSV_REASONS: [RegExp, MessageKey, (m: RegExpExecArray) => Record<string, string | number>][] = [
  [/^empty file$/, "csv.empty", () => ({})],
  [/^row longer than (\d+) MB$/, "csv.longRow", (m) => ({ mb: Number(m[1]) })],
  [/^unknown encoding$/, "csv.unknownEncoding", () => ({})],
  [/^invalid (\S+) byte sequence$/, "csv.badBytes", (m) => ({ encoding: encodingName(m[1]) })],
  [/^expected (\d+) fields, found (\d+)$/, "csv.fields", (m) => ({ expected: Number(m[1]), found: Number(m[2]) })],
  [/^no data rows$/, "csv.noRows", () => ({})],
];

function csvReason(reason: unknown): string | null {
  for (const [pattern, key, params] of CSV_REASONS) {
    const match = typeof reason === "string" ? pattern.exec(reason) : null;
    if (match) return t(key, params(match));
  }
  return null;
}

export function uploadProblem(error: unknown): HTMLElement {
  if (!(error instanceof ApiError)) return banner("error", t("upload.failed"), [String(error)]);
  if (error.code === "aborted") return banner("info", t("upload.cancelled"));
  if (error.status === 413) {
    const limit = error.details.limit_bytes;
    return banner("error", t("upload.tooLarge"), [
      typeof limit === "number" ? t("upload.limit", { limit: bytes(limit) }) : t("upload.limitUnknown"),
      t("upload.split"),
    ]);
  }
  if (error.status === 422) {
    // The server's message names the problem in the file, in English; in Japanese its reason
    // when we know it, else the message as it is.
    const line = error.details.line;
    const reason = locale() === "en" ? error.serverMessage : csvReason(error.details.reason);
    return banner(
      "error",
      typeof line === "number" ? t("upload.unreadableLine", { line: String(line) }) : t("upload.unreadable"),
      [reason ?? h("p", { class: "muted small server-message" }, error.serverMessage), t("upload.tryOptions")],
    );
  }
  if (error.details.field === "name") return banner("error", t(error.code === "conflict" ? "upload.nameTaken" : "upload.badName"), []);
  return banner("error", t("upload.failed"), [error.message]);
}

// `into`: upload a new version of that dataset instead of a new dataset.
export function uploadPanel(onUploaded: (dataset: Dataset) => void, into?: string): HTMLElement {
  const status = h("div", { class: "upload-status" });
  const name = h("input", { name: "name", placeholder: t("upload.namePlaceholder"), maxlength: 200 });
  const options = readOptionsFields();
  const details = h(
    "details",
    { class: "read-options" },
    h("summary", {}, t("upload.options")),
    h("div", { class: "fields" }, into ? null : h("label", { class: "field" }, t("upload.name"), name), options.element),
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
    dropzone(".csv,.tsv,.txt,text/csv", t("dropzone.hint"), start),
    details,
    status,
  );
}
