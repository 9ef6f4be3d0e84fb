// An HTML table from a card (DataFrame.style, df.to_html(), a table in IPython.display.HTML), as the server
// rebuilt it: table markup with inline styles from an allowlist, no scripts, ids, classes or style sheets
// (server/execution/html_tables.py). Its box clips and scrolls what it holds (contain: paint), and the
// page's CSP runs no inline script, should anything slip through.

import { h } from "../dom";

export function htmlTableOutput(html: string): HTMLElement {
  const el = h("div", { class: "output-html-table" });
  el.innerHTML = html; // the server's sanitized table
  return el;
}
