// Editing a list of typed parameters, a card's or a dashboard's: a row each with its name (what the code
// reads, a Python name), its label (what people see, any text, Japanese too), its type, its default and,
// for a choice, its choices. Each mistake is said at its row before anything is sent, and what the server
// still refuses is shown at the parameter its pointer names.

import "./parameter-rows.css";
import type { Parameter } from "../api/dashboards";
import { ApiError, errorText } from "../api/errors";
import { h } from "../dom";
import { t, tWith, type MessageKey } from "../i18n";

type Field = "name" | "default" | "choices";

const TYPES: Parameter["type"][] = ["text", "number", "date", "choice"];
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const KEYWORDS = new Set("False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(" "));
export const MAX_PARAMETERS = 20;

interface Row {
  element: HTMLElement;
  focus(): void;
  read(): Parameter;
  problem(field: Field | null, text: (Node | string)[]): void;
}

// The choices typed (separated by , 、 or a new line), without repeats; numbers when all of them are.
function splitChoices(text: string): (string | number)[] {
  const parts = [...new Set(text.split(/[,、\n]/).map((part) => part.trim()).filter(Boolean))];
  return parts.every((part) => !Number.isNaN(Number(part))) ? parts.map(Number) : parts;
}

// What is wrong with `parameter` (the message and the field), or null.
function check(parameter: Parameter, earlier: Set<string>): [MessageKey, Field] | null {
  const { name, type, default: value } = parameter;
  if (!name) return ["paramRows.noName", "name"];
  if (!NAME.test(name)) return ["paramRows.badName", "name"];
  if (KEYWORDS.has(name)) return ["paramRows.keyword", "name"];
  if (earlier.has(name)) return ["paramRows.sameName", "name"];
  if (type === "number" && (typeof value !== "number" || !Number.isFinite(value))) return ["paramRows.badNumber", "default"];
  if (type === "date" && !DATE.test(String(value))) return ["paramRows.badDate", "default"];
  if (type === "choice" && !parameter.choices?.length) return ["paramRows.noChoices", "choices"];
  if (type === "choice" && !parameter.choices!.includes(value)) return ["paramRows.notAChoice", "default"];
  return null;
}

function parameterRow(p: Parameter | null, remove: (row: Row) => void): Row {
  const name = h("input", { class: "param-name", name: "name", value: p?.name ?? "", maxlength: 64, spellcheck: false, autocomplete: "off", placeholder: "region" });
  const label = h("input", { name: "label", value: p?.label ?? "", maxlength: 200, placeholder: t("paramRows.labelExample") });
  const type = h("select", { name: "type" }, ...TYPES.map((kind) => h("option", { value: kind, selected: kind === (p?.type ?? "text") }, t(`paramRows.type.${kind}` as MessageKey))));
  const value = h("input", { name: "default", value: p ? String(p.default) : "" });
  const choices = h("input", { name: "choices", value: (p?.choices ?? []).join(", "), placeholder: t("paramRows.choicesExample") });
  const choicesField = h("label", { class: "param-choices" }, t("paramRows.choices"), choices);
  const drop = h("button", { type: "button", class: "ghost small param-remove" }, "✕");
  const error = h("p", { class: "form-error", role: "alert" });
  const element = h("div", { class: "param-row" },
    h("label", {}, t("paramRows.name"), name),
    h("label", {}, t("paramRows.labelField"), label),
    h("label", {}, t("paramRows.type"), type),
    h("label", {}, t("paramRows.default"), value),
    choicesField, drop, error);
  const shape = () => {
    value.type = type.value === "number" ? "number" : type.value === "date" ? "date" : "text";
    value.step = type.value === "number" ? "any" : "";
    choicesField.hidden = type.value !== "choice";
  };
  const named = () => {
    const text = t("paramRows.remove", { name: name.value.trim() || t("paramRows.unnamed") });
    drop.setAttribute("aria-label", text);
    drop.title = text;
  };
  type.addEventListener("change", shape);
  name.addEventListener("input", named);
  shape();
  named();
  const fields: Record<Field, HTMLElement> = { name, default: value, choices };
  const row: Row = {
    element,
    focus: () => name.focus(),
    read() {
      const kind = type.value as Parameter["type"];
      const raw = value.value.trim();
      const read: Parameter = { name: name.value.trim(), type: kind, default: kind === "number" && raw !== "" ? Number(raw) : kind === "number" ? Number.NaN : raw };
      if (label.value.trim()) read.label = label.value.trim();
      if (kind === "choice") {
        read.choices = splitChoices(choices.value);
        if (typeof read.choices[0] === "number" && raw !== "" && !Number.isNaN(Number(raw))) read.default = Number(raw);
      }
      return read;
    },
    problem(field, text) {
      error.replaceChildren(...text);
      element.classList.toggle("invalid", field !== null);
      for (const [key, input] of Object.entries(fields)) input.toggleAttribute("aria-invalid", key === field);
    },
  };
  drop.addEventListener("click", () => remove(row));
  return row;
}

export class ParameterRows {
  readonly element: HTMLElement;
  private rows: Row[] = [];
  private list = h("div", { class: "param-rows" });
  private none = h("p", { class: "muted small" });
  private add = h("button", { type: "button", class: "secondary small" }, t("paramRows.add"));

  // `none` says what an empty list means where the rows are shown.
  constructor(parameters: Parameter[], none: string) {
    this.none.textContent = none;
    this.add.addEventListener("click", () => {
      this.append(null);
      this.rows.at(-1)?.focus();
    });
    parameters.forEach((p) => this.append(p));
    this.element = h("div", { class: "param-editor" }, this.none, this.list, h("div", {}, this.add));
  }

  // The parameters as typed, or null when one is not valid (each problem shown at its row).
  read(): Parameter[] | null {
    const names = new Set<string>();
    let valid = true;
    const read = this.rows.map((row) => {
      const parameter = row.read();
      const problem = check(parameter, names);
      row.problem(problem?.[1] ?? null, problem ? tWith(problem[0], { example: h("code", {}, "region") }, { name: parameter.name }) : []);
      valid &&= problem === null;
      names.add(parameter.name);
      return parameter;
    });
    return valid ? read : null;
  }

  // Shows a refusal of the server at the parameter its pointer (/parameters/<i>/<field>) names;
  // false when it names none, for the caller to show it elsewhere.
  refused(error: unknown): boolean {
    if (!(error instanceof ApiError)) return false;
    const at = /^\/(?:document\/)?parameters\/(\d+)\/?(\w*)/.exec(String(error.details.pointer ?? ""));
    const row = at ? this.rows[Number(at[1])] : undefined;
    if (!at || !row) return false;
    // at the parameter, without the pointer the page-wide message adds
    const field = (["name", "default", "choices"] as const).find((f) => f === at[2]) ?? null;
    row.problem(field, [errorText(error.code, { ...error.details, pointer: "" }, error.serverMessage)]);
    return true;
  }

  private append(p: Parameter | null): void {
    const row = parameterRow(p, (gone) => {
      this.rows = this.rows.filter((r) => r !== gone);
      gone.element.remove();
      this.update();
    });
    this.rows.push(row);
    this.list.append(row.element);
    this.update();
  }

  private update(): void {
    this.none.hidden = this.rows.length > 0;
    this.add.disabled = this.rows.length >= MAX_PARAMETERS;
  }
}
