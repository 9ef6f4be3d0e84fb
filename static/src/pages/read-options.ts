// How to read a CSV: encoding and delimiter pickers, "detect" by default.

import { h } from "../dom";
import type { ReadOptions } from "../api/datasets";

const ENCODINGS: [string, string][] = [
  ["", "Detect automatically"],
  ["utf-8", "UTF-8"],
  ["utf-8-sig", "UTF-8 with BOM"],
  ["cp932", "Shift_JIS (CP932)"],
  ["euc_jp", "EUC-JP"],
  ["utf-16", "UTF-16"],
  ["latin-1", "Latin-1"],
];

const DELIMITERS: [string, string][] = [
  ["", "Detect automatically"],
  [",", "Comma ,"],
  ["\t", "Tab"],
  [";", "Semicolon ;"],
  ["|", "Pipe |"],
];

function select(label: string, name: string, choices: [string, string][], value = ""): [HTMLElement, HTMLSelectElement] {
  const el = h("select", { name }, choices.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [h("label", { class: "field" }, label, el), el];
}

export function readOptionsFields(initial: ReadOptions = {}): { element: HTMLElement; value(): ReadOptions } {
  const [encodingField, encoding] = select("Encoding", "encoding", ENCODINGS, initial.encoding);
  const [delimiterField, delimiter] = select("Delimiter", "delimiter", DELIMITERS, initial.delimiter);
  return {
    element: h("div", { class: "fields" }, encodingField, delimiterField),
    value: () => ({ encoding: encoding.value, delimiter: delimiter.value }),
  };
}

export function delimiterName(delimiter: string): string {
  return DELIMITERS.find(([v]) => v === delimiter)?.[1].replace(/ .$/, "") ?? JSON.stringify(delimiter);
}
