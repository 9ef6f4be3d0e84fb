// How to read a CSV: encoding and delimiter pickers, "detect" by default.

import { h } from "../dom";
import type { ReadOptions } from "../api/datasets";
import { has, locale, t, type MessageKey } from "../i18n";

// The encodings offered; "" detects.
const ENCODINGS = ["", "utf-8", "utf-8-sig", "cp932", "euc_jp", "utf-16", "latin-1"];

// How people call an encoding, by the server's codec names (Python's canonical ones, and the aliases
// the picker sends); the same in every language but for the translated ones (a message key).
const ENCODING_NAMES: Record<string, string | MessageKey> = {
  "utf-8": "UTF-8",
  "utf-8-sig": "read.utf8bom",
  cp932: "read.cp932",
  shift_jis: "Shift_JIS",
  euc_jp: "EUC-JP",
  "utf-16": "UTF-16",
  "utf-16-le": "UTF-16LE",
  "utf-16-be": "UTF-16BE",
  "latin-1": "Latin-1",
  "iso8859-1": "Latin-1",
  cp1252: "Windows-1252",
};

const DELIMITERS: [string, MessageKey, string][] = [
  ["", "read.detect", ""],
  [",", "read.comma", " ,"],
  ["\t", "read.tab", ""],
  [";", "read.semicolon", " ;"],
  ["|", "read.pipe", " |"],
];

// An encoding as the glossary names it (「Shift_JIS（CP932）」), not its codec name; a codec this does not
// know in capitals ("iso8859-15" as ISO8859-15).
export function encodingName(codec: string): string {
  const name = ENCODING_NAMES[codec.toLowerCase()];
  return name === undefined ? codec.toUpperCase() : has(name) ? t(name as MessageKey) : name;
}

function select(label: string, name: string, choices: [string, string][], value = ""): [HTMLElement, HTMLSelectElement] {
  const el = h("select", { name }, choices.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [h("label", { class: "field" }, label, el), el];
}

export function readOptionsFields(initial: ReadOptions = {}): { element: HTMLElement; value(): ReadOptions } {
  const [encodingField, encoding] = select(t("read.encoding"), "encoding", ENCODINGS.map((codec) => [codec, codec ? encodingName(codec) : t("read.detect")]), initial.encoding);
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
