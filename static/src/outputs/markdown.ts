// Markdown from a kernel (IPython.display.Markdown) rendered as a reader expects, without letting the
// kernel write HTML: markdown-it with raw HTML off (tags in the text show as text), links only to http(s),
// mailto and in-page anchors (opened in a new tab), images only from data: URLs of PNG or JPEG (the page's CSP
// allows no other) whose header declares at most IMAGE_PIXELS (a browser decodes an image whole: a 140 KB PNG
// can declare 12,000 x 12,000 pixels, 580 MB of a reader's tab; the server reads image outputs' headers the same
// way, server/execution/images.py); another shows its alt text. The parser is its own chunk, loaded at the first markdown output; until then, and for text too
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
const SAFE_URL = /^(https?:|mailto:|#|data:image\/(png|jpeg);)/i;
const IMAGE_PIXELS = 25_000_000; // server/limits.py IMAGE_PIXELS
const DATA_IMAGE = /^data:image\/(png|jpeg);base64,/i;
const JPEG_STANDALONE = new Set([0x01, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8]);
const JPEG_FRAMES = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function bytes(base64: string): Uint8Array | null {
  const clean = base64.replace(/[^A-Za-z0-9+/]/g, "");
  try {
    return Uint8Array.from(atob(clean.slice(0, clean.length - (clean.length % 4))), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** The pixels a data: URL's PNG or JPEG header declares (null: not one, or unreadable). */
export function imagePixels(url: string): number | null {
  const kind = DATA_IMAGE.exec(url);
  if (!kind) return null;
  const data = bytes(url.slice(kind[0].length));
  if (!data) return null;
  const view = new DataView(data.buffer);
  if (kind[1].toLowerCase() === "png") {
    const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (data.length < 24 || signature.some((b, i) => data[i] !== b)) return null;
    return view.getUint32(16) * view.getUint32(20);
  }
  if (data[0] !== 0xff || data[1] !== 0xd8) return null;
  let at = 2;
  while (at + 4 <= data.length) {
    if (data[at] !== 0xff) return null;
    const marker = data[at + 1];
    if (marker === 0xff) at += 1;
    else if (JPEG_STANDALONE.has(marker)) at += 2;
    else if (JPEG_FRAMES.has(marker)) return at + 9 <= data.length ? view.getUint16(at + 5) * view.getUint16(at + 7) : null;
    else at += 2 + view.getUint16(at + 2);
  }
  return null;
}

let parser: Promise<MarkdownIt> | null = null;
let queue: Promise<unknown> = Promise.resolve();

function load(): Promise<MarkdownIt> {
  parser ??= import("markdown-it").then(({ default: MarkdownIt }) => {
    const md = new MarkdownIt({ html: false, linkify: false, typographer: false });
    md.validateLink = (url) => SAFE_URL.test(url.trim());
    const open = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
    const image = md.renderer.rules.image ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
    md.renderer.rules.image = (tokens, idx, options, env, self) => {
      const pixels = imagePixels(tokens[idx].attrGet("src") ?? "");
      if (pixels === null || pixels > IMAGE_PIXELS) return md.utils.escapeHtml(tokens[idx].content);
      return image(tokens, idx, options, env, self);
    };
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
