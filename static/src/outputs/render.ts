// One output as an element: text as text, tables as DOM tables, Bokeh via BokehJS, images as
// images. Kernel HTML and JavaScript are never put in the page: HTML tables come rebuilt by the server.

import { h } from "../dom";
import type { BokehFigures } from "./bokeh";
import { dataframeOutput, type DataFrameBundle } from "./dataframe";
import { htmlTableOutput } from "./htmltable";
import { markdownOutput } from "./markdown";
import { t } from "../i18n";
import { kernelError, truncationNotice } from "../i18n/kernel";

export const BOKEH_MIME = "application/vnd.bi.bokeh-item.v1+json";
export const DATAFRAME_MIME = "application/vnd.bi.dataframe.v1+json";
export const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";

export interface Output {
  output_type: string;
  name?: string;
  text?: string;
  data?: Record<string, unknown>;
  output_id?: string;
  display_id?: string;
  ename?: string;
  evalue?: string;
  traceback?: string[];
  details?: Record<string, unknown>;
  root_id?: string;
  patch?: unknown;
  wait?: boolean;
}

// Text as a terminal shows it: on each line a carriage return goes back to its start, so what follows
// writes over what was there (progress bars such as tqdm's rewrite one line).
export function terminalText(text: string): string {
  return text
    .split("\n")
    .map((line) => line.split("\r").reduce((shown, part) => part + shown.slice(part.length), ""))
    .join("\n");
}

// Text a card printed; the server's notice of a truncated output reads in the user's language.
export function streamOutput(name: string, text: string): HTMLElement {
  const notice = name === "stderr" ? truncationNotice(text) : null;
  return notice ? h("p", { class: "output-note error", title: text.trim() }, notice) : h("pre", { class: `output-stream ${name}` }, terminalText(text));
}

// An error: the blocked imports, missing datasets and limits the platform sets in the user's
// language, with Python's own words below; other errors as Python tells them.
export function errorOutput(output: Output): HTMLElement {
  const traceback = (output.traceback ?? []).join("\n");
  const explained = kernelError(output.ename ?? "", output.evalue ?? "", output.details);
  // Python's words are code's output, as the traceback is (monospace, never translated).
  const raw = h("code", { class: "error-title" }, h("strong", {}, output.ename ?? t("output.error")), output.evalue ? `: ${output.evalue}` : "");
  return h(
    "div",
    { class: "output-error", role: "alert" },
    explained ? h("p", { class: "error-explained" }, explained) : null,
    // A platform error (its ename is our code: a timeout, a refusal) says it all in the user's language.
    explained ? (/^[a-z_]+$/.test(output.ename ?? "") ? null : h("div", { class: "error-raw small" }, raw)) : raw,
    traceback ? h("details", { open: !explained }, h("summary", {}, t("output.traceback")), h("pre", {}, traceback)) : null,
  );
}

function bokehOutput(item: { root_id?: string }, figures: BokehFigures): HTMLElement {
  const el = h("div", { class: "output-bokeh" });
  figures.embed(item, el).catch((error: Error) => el.replaceWith(h("p", { class: "output-note error" }, t("output.chartFailed", { message: error.message }))));
  return el;
}

// A chart drawn as an image (matplotlib), with a link that saves it as a file. Bokeh charts save
// themselves: their toolbar's save tool writes a PNG.
function imageOutput(mime: string, value: string): HTMLElement {
  const src = mime === "image/svg+xml" ? `data:image/svg+xml;charset=utf-8,${encodeURIComponent(value)}` : `data:${mime};base64,${value}`;
  const kind = mime === "image/svg+xml" ? "svg" : mime === "image/jpeg" ? "jpg" : "png";
  return h(
    "figure",
    { class: "output-image-box" },
    h("img", { class: "output-image", src, alt: t("output.image") }),
    h("a", { class: "image-download small", href: src, download: `chart.${kind}` }, t("output.saveImage", { kind: kind.toUpperCase() })),
  );
}

// The element for a display_data / execute_result bundle, from its richest type we can show safely.
export function bundleOutput(output: Output, figures: BokehFigures): HTMLElement {
  const data = output.data ?? {};
  if (data[BOKEH_MIME]) return bokehOutput(data[BOKEH_MIME] as { root_id?: string }, figures);
  if (data[DATAFRAME_MIME]) return dataframeOutput(data[DATAFRAME_MIME] as DataFrameBundle, output.output_id);
  if (data[WIDGET_MIME]) return h("p", { class: "output-note" }, t("output.widget"));
  for (const mime of ["image/png", "image/jpeg", "image/svg+xml"]) {
    if (typeof data[mime] === "string") return imageOutput(mime, data[mime] as string);
  }
  if (typeof data["text/html"] === "string") return htmlTableOutput(data["text/html"]);
  if (typeof data["text/markdown"] === "string") return markdownOutput(data["text/markdown"]);
  if (typeof data["text/plain"] === "string") return h("pre", { class: "output-text" }, data["text/plain"]);
  return h("p", { class: "output-note" }, t("output.unknown", { types: Object.keys(data).join(", ") || t("output.empty") }));
}
