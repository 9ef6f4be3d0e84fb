// A card's parameters: add, edit and remove typed parameters. A name is what the code reads (a Python
// name), the label what people see (any text, Japanese too); each mistake is said at its field before
// anything is sent, and what the server still refuses is shown at the parameter it names.

import "../pages/manage.css";
import type { CardParameter } from "../api/cards";
import { ApiError, errorText } from "../api/errors";
import { closeButton, openDialog } from "../components/dialog";
import { h } from "../dom";
import { t, type MessageKey } from "../i18n";

const TYPES: CardParameter["type"][] = ["text", "number", "date", "choice"];
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const KEYWORDS = new Set("False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(" "));
const MAX_PARAMETERS = 20;

interface Row {
  element: HTMLElement;
  read(): CardParameter;
  problem(field: "name" | "default" | "choices" | "", text: string): void;
}

function splitChoices(text: string, numbers: boolean): (string | number)[] {
  const parts = text.split(/[,、\n]/).map((part) => part.trim()).filter(Boolean);
  return numbers && parts.every((part) => !Number.isNaN(Number(part))) ? parts.map(Number) : parts;
}

function parameterRow(parameter: CardParameter | null, remove: (row: Row) => void): Row {
  const name = h("input", { name: "name", value: parameter?.name ?? "", maxlength: 64, required: true, spellcheck: false, "aria-label": t("cardParams.name") });
  const label = h("input", { name: "label", value: parameter?.label ?? "", maxlength: 200, "aria-label": t("cardParams.labelField") });
  const type = h("select", { name: "type", "aria-label": t("cardParams.type") }, ...TYPES.map((kind) => h("option", { value: kind, selected: kind === (parameter?.type ?? "text") }, t(`cardParams.type.${kind}` as MessageKey))));
  const value = h("input", { name: "default", value: parameter ? String(parameter.default) : "", "aria-label": t("cardParams.default") });
  const choices = h("input", { name: "choices", value: (parameter?.choices ?? []).join(", "), placeholder: t("cardParams.choicesPlaceholder"), "aria-label": t("cardParams.choices") });
  const choicesField = h("label", { class: "param-choices" }, t("cardParams.choices"), choices);
  const error = h("p", { class: "form-error", role: "alert" });
  const drop = h("button", { type: "button", class: "ghost small", "aria-label": t("cardParams.removeLabel", { name: parameter?.name ?? "" }) }, t("cardParams.remove"));
  const shape = () => {
    value.type = type.value === "number" ? "number" : type.value === "date" ? "date" : "text";
    if (type.value === "number") value.step = "any";
    choicesField.hidden = type.value !== "choice";
  };
  type.addEventListener("change", shape);
  shape();
  const fields: Record<string, HTMLElement> = { name, default: value, choices };
  const element = h("fieldset", { class: "param-row" },
    h("div", { class: "fields" }, h("label", {}, t("cardParams.name"), name), h("label", {}, t("cardParams.labelField"), label), h("label", {}, t("cardParams.type"), type), h("label", {}, t("cardParams.default"), value), drop),
    choicesField, error);
  const row: Row = {
    element,
    read() {
      const kind = type.value as CardParameter["type"];
      const read: CardParameter = { name: name.value.trim(), type: kind, default: kind === "number" ? Number(value.value) : value.value };
      if (label.value.trim()) read.label = label.value.trim();
      if (kind === "choice") {
        read.choices = splitChoices(choices.value, true);
        if (typeof read.choices[0] === "number" && !Number.isNaN(Number(value.value))) read.default = Number(value.value);
      }
      return read;
    },
    problem(field, text) {
      error.textContent = text;
      for (const [key, input] of Object.entries(fields)) input.toggleAttribute("aria-invalid", key === field);
    },
  };
  drop.addEventListener("click", () => remove(row));
  return row;
}

// What is wrong with `parameter` (the key and the field), or null.
function check(parameter: CardParameter, earlier: Set<string>): [MessageKey, "name" | "default" | "choices"] | null {
  if (!parameter.name) return ["cardParams.nameMissing", "name"];
  if (!NAME.test(parameter.name)) return ["cardParams.nameInvalid", "name"];
  if (KEYWORDS.has(parameter.name)) return ["cardParams.nameKeyword", "name"];
  if (earlier.has(parameter.name)) return ["cardParams.nameTaken", "name"];
  if (parameter.type === "number" && (typeof parameter.default !== "number" || Number.isNaN(parameter.default))) return ["cardParams.numberInvalid", "default"];
  if (parameter.type === "date" && !/^\d{4}-\d{2}-\d{2}$/.test(String(parameter.default))) return ["cardParams.dateInvalid", "default"];
  if (parameter.type === "choice" && !parameter.choices?.length) return ["cardParams.choicesMissing", "choices"];
  if (parameter.type === "choice" && !parameter.choices!.includes(parameter.default)) return ["cardParams.defaultNotChoice", "default"];
  return null;
}

// Opens the editor; `commit` saves the list (a new version of the card) and throws what the server refused.
export function openParameters(parameters: CardParameter[], commit: (parameters: CardParameter[]) => Promise<void>): void {
  const rows: Row[] = [];
  const holder = h("div", { class: "param-rows" });
  const empty = h("p", { class: "muted" }, t("cardParams.none"));
  const note = h("p", { class: "form-error", role: "alert" });
  const add = h("button", { type: "button", class: "secondary small" }, t("cardParams.add"));
  const refresh = () => {
    holder.replaceChildren(...rows.map((row) => row.element));
    empty.hidden = rows.length > 0;
    add.disabled = rows.length >= MAX_PARAMETERS;
  };
  const remove = (row: Row) => {
    rows.splice(rows.indexOf(row), 1);
    refresh();
  };
  const append = (parameter: CardParameter | null) => rows.push(parameterRow(parameter, remove));
  parameters.forEach(append);
  add.addEventListener("click", () => {
    append(null);
    refresh();
    (rows[rows.length - 1].element.querySelector("input") as HTMLInputElement).focus();
  });
  refresh();
  const save = h("button", { type: "button", class: "primary" }, t("cardParams.save"));
  const dialog = openDialog(t("cardParams.title"), [h("p", { class: "muted small" }, t("cardParams.lead")), empty, holder, h("div", {}, add), note], [closeButton(), save], true);
  save.addEventListener("click", async () => {
    note.textContent = "";
    const read = rows.map((row) => row.read());
    const names = new Set<string>();
    let wrong = false;
    read.forEach((parameter, i) => {
      const problem = check(parameter, names);
      names.add(parameter.name);
      rows[i].problem(problem?.[1] ?? "", problem ? t(problem[0], { name: parameter.name }) : "");
      wrong ||= problem !== null;
    });
    if (wrong) return;
    save.disabled = true;
    try {
      await commit(read);
      dialog.close();
    } catch (error) {
      const at = error instanceof ApiError ? /^\/parameters\/(\d+)\/?(\w*)/.exec(String(error.details.pointer ?? "")) : null;
      // at the parameter, without the pointer the page-wide message adds
      if (at && rows[Number(at[1])]) rows[Number(at[1])].problem(at[2] as "name", errorText((error as ApiError).code, { ...(error as ApiError).details, pointer: "" }, (error as ApiError).serverMessage));
      else note.textContent = (error as Error).message;
    } finally {
      save.disabled = false;
    }
  });
}
