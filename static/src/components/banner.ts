// A message in the page: info, success, warning or error, with optional actions.

import { h } from "../dom";

export type Tone = "info" | "success" | "warning" | "error";

export function banner(tone: Tone, title: string, body: (Node | string)[] = [], actions: HTMLElement[] = []): HTMLElement {
  return h(
    "div",
    { class: `banner ${tone}`, role: tone === "error" || tone === "warning" ? "alert" : "status" },
    h("div", { class: "banner-text" }, h("strong", {}, title), ...body.map((part) => (typeof part === "string" ? h("p", {}, part) : part))),
    actions.length ? h("div", { class: "banner-actions" }, ...actions) : null,
  );
}
