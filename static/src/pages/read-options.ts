// How to read a CSV: encoding and delimiter pickers, "detect" by default.

import { h } from "../dom";
import type { ReadOptions } from "../api/datasets";
import { has, locale, t, type MessageKey } from "../i18n";

// Names of encodings are the same in every language, but for these two.
const ENCODINGS: [string, string | MessageKey][] = [
  ["", "read.detect"],
  ["utf-8", "UTF-8"],
  ["utf-8-sig", "read.utf8bom"],
  ["cp932", "Shift_JIS (CP932)"],
  ["euc_jp", "EUC-JP"],
  ["utf-16", "UTF-16"],
  ["latin-1", "Latin-1"],
];

const DELIMITERS: [string, MessageKey, string][] = [
  ["", "read.detect", ""],
  [",", "read.comma", " ,"],
  ["\t", "read.tab", ""],
  [";", "read.semicolon", " ;"],
  ["|", "read.pipe", " |"],
];

const optionText = (text: string) => (has(text) ? t(text) : text);

function select(label: string, name: string, choices: [string, string][], value = ""): [HTMLElement, HTMLSelectElement] {
  const el = h("select", { name }, choices.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [h("label", { class: "field" }, label, el), el];
}

export function readOptionsFields(initial: ReadOptions = {}): { element: HTMLElement; value(): ReadOptions } {
  const [encodingField, encoding] = select(t("read.encoding"), "encoding", ENCODINGS.map(([v, text]) => [v, optionText(text)]), initial.encoding);
  const [delimiterField, delimiter] = select(t("read.delimiter"), "delimiter", DELIMITERS.map(([v, key, sign]) => [v, t(key) + sign]), initial.delimiter);
  return {
    element: h("div", { class: "fields" }, encodingField, delimiterField),
    value: () => ({ encoding: encoding.value, delimiter: delimiter.value }),
  };
}

// "Comma"; `inSentence` for "comma-separated" in English.
export function delimiterName(delimiter: string, inSentence = false): string {
  const key = DELIMITERS.find(([v]) => v === delimiter)?.[1];
  const name = key ? t(key) : JSON.stringify(delimiter);
  return inSentence && locale() === "en" ? name.toLowerCase() : name;
}
