// Markdown from a kernel (IPython.display.Markdown) rendered as a reader expects, without letting the
// kernel write HTML: markdown-it with raw HTML off (tags in the text show as text), links only to http(s),
// mailto and in-page anchors (opened in a new tab), images only from data: URLs (the page's CSP allows no
// other). The parser is its own chunk, loaded at the first markdown output; until then, and for text too
// long or too full of markup to parse on the page, the text shows as it is.
//
// Parsing runs on the page's main thread and costs about its markup characters (brackets, emphasis, code
// spans...: 100,000 "![" took 2.6 s, and 24 such outputs froze a dashboard for 46 s), so an output of more
// than MARKUP_CHARS of them is not parsed, and outputs are parsed one per task, the page answering between.

import type MarkdownIt from "markdown-it";
import { h } from "../dom";

const RENDERED_CHARS = 200_000;
const MARKUP_CHARS = 20_000; // about 0.2 s of parsing at most
const MARKUP = /[[\]!*_`~|<>&\\]/g;
const SAFE_URL = /^(https?:|mailto:|#|data:image\/(png|jpeg|gif|webp);)/i;

let parser: Promise<MarkdownIt> | null = null;
let queue: Promise<unknown> = Promise.resolve();

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

/** Whether ``text`` is cheap enough to parse on the page. */
export function renderable(text: string): boolean {
  if (text.length > RENDERED_CHARS) return false;
  MARKUP.lastIndex = 0;
  let count = 0;
  while (MARKUP.exec(text) !== null) {
    if (++count > MARKUP_CHARS) return false;
  }
  return true;
}

function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export function markdownOutput(text: string): HTMLElement {
  const el = h("div", { class: "output-markdown" }, h("pre", { class: "output-text" }, text));
  if (renderable(text)) {
    queue = queue
      .then(() => Promise.all([load(), nextTask()]))
      .then(([md]) => (el.innerHTML = md.render(text))) // markdown-it's own output: no raw HTML passes (html: false)
      .catch(() => undefined); // the text stays
  }
  return el;
}
