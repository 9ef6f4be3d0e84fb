// Markdown from a kernel (IPython.display.Markdown) rendered as a reader expects, without letting the
// kernel write HTML: markdown-it with raw HTML off (tags in the text show as text), links only to http(s),
// mailto and in-page anchors (opened in a new tab), images only from data: URLs (the page's CSP allows no
// other). The parser is its own chunk, loaded at the first markdown output; until then, and for text too
// long to parse on the page, the text shows as it is.

import type MarkdownIt from "markdown-it";
import { h } from "../dom";

const RENDERED_CHARS = 200_000;
const SAFE_URL = /^(https?:|mailto:|#|data:image\/(png|jpeg|gif|webp);)/i;

let parser: Promise<MarkdownIt> | null = null;

function load(): Promise<MarkdownIt> {
  parser ??= import("markdown-it").then(({ default: MarkdownIt }) => {
    const md = new MarkdownIt({ html: false, linkify: false, typographer: false });
    md.validateLink = (url) => SAFE_URL.test(url.trim());
    const open = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
    md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
      tokens[idx].attrSet("target", "_blank");
      tokens[idx].attrSet("rel", "noopener noreferrer");
      return open(tokens, idx, options, env, self);
    };
    return md;
  });
  return parser;
}

export function markdownOutput(text: string): HTMLElement {
  const el = h("div", { class: "output-markdown" }, h("pre", { class: "output-text" }, text));
  if (text.length <= RENDERED_CHARS) {
    void load()
      .then((md) => (el.innerHTML = md.render(text))) // markdown-it's own output: no raw HTML passes (html: false)
      .catch(() => undefined); // the text stays
  }
  return el;
}
