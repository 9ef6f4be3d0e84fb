// Editing a list of typed parameters (the dashboard's): a row each with its name (a Python identifier,
// checked here with a message that says how to fix it), a label in any language, its type, its default
// and, for a choice, its choices. `read()` gives the parameters, or null after showing what is wrong.

import type { Parameter } from "../api/dashboards";
import { h } from "../dom";
import { t, type MessageKey } from "../i18n";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TYPES: Record<Parameter["type"], MessageKey> = { text: "paramEdit.type.text", number: "paramEdit.type.number", date: "paramEdit.type.date", choice: "paramEdit.type.choice" };
export const MAX_PARAMETERS = 20;

interface Row {
  element: HTMLElement;
  name: HTMLInputElement;
  label: HTMLInputElement;
  type: HTMLSelectElement;
  value: HTMLInputElement;
  choices: HTMLInputElement;
  problem: HTMLElement;
}

export class ParameterEditor {
  readonly element: HTMLElement;
  private rows: Row[] = [];
  private list = h("div", { class: "param-rows" });
  private none = h("p", { class: "muted small" }, t("paramEdit.none"));
  private add = h("button", { type: "button", class: "ghost small" }, t("paramEdit.add"));

  constructor(parameters: Parameter[]) {
    this.add.addEventListener("click", () => {
      this.addRow({ name: "", type: "text", default: "" });
      this.rows.at(-1)?.name.focus();
    });
    for (const p of parameters) this.addRow(p);
    this.element = h("fieldset", { class: "param-editor" }, h("legend", {}, t("params.label")), this.none, this.list, this.add);
    this.update();
  }

  // The parameters as typed, or null when one is not valid (each problem shown under its row).
  read(): Parameter[] | null {
    const names = new Set<string>();
    let valid = true;
    const read = this.rows.map((row) => {
      const [parameter, problem] = this.parse(row, names);
      row.problem.textContent = problem ?? "";
      row.element.classList.toggle("invalid", problem !== null);
      if (problem !== null) valid = false;
      names.add(parameter.name);
      return parameter;
    });
    return valid ? read : null;
  }

  private parse(row: Row, taken: Set<string>): [Parameter, string | null] {
    const name = row.name.value.trim();
    const type = row.type.value as Parameter["type"];
    const raw = row.value.value.trim();
    const label = row.label.value.trim();
    const parameter: Parameter = { name, type, default: raw, ...(label ? { label } : {}) };
    if (!IDENTIFIER.test(name)) return [parameter, name ? t("paramEdit.badName", { name }) : t("paramEdit.noName")];
    if (taken.has(name)) return [parameter, t("paramEdit.sameName", { name })];
    if (type === "number") {
      parameter.default = Number(raw);
      if (raw === "" || !Number.isFinite(parameter.default)) return [parameter, t("paramEdit.badNumber")];
    }
    if (type === "date" && !DATE.test(raw)) return [parameter, t("paramEdit.badDate")];
    if (type === "choice") {
      const choices = [...new Set(row.choices.value.split(/[,、]/).map((c) => c.trim()).filter(Boolean))];
      parameter.choices = choices;
      if (!choices.length) return [parameter, t("paramEdit.noChoices")];
      if (!choices.includes(raw)) return [parameter, t("paramEdit.notAChoice")];
    }
    return [parameter, null];
  }

  private addRow(p: Parameter): void {
    const name = h("input", { class: "param-name", value: p.name, maxlength: 64, spellcheck: false, autocomplete: "off", placeholder: "region" });
    const label = h("input", { value: p.label ?? "", maxlength: 200, placeholder: t("paramEdit.labelExample") });
    const type = h("select", {}, ...Object.entries(TYPES).map(([value, key]) => h("option", { value, selected: value === p.type }, t(key))));
    const value = h("input", { value: String(p.default ?? "") });
    const choices = h("input", { value: (p.choices ?? []).join(", "), placeholder: t("paramEdit.choicesExample") });
    const remove = h("button", { type: "button", class: "ghost small tile-remove" }, "✕");
    const problem = h("p", { class: "form-error", role: "alert" });
    const choicesField = h("label", { class: "param-choices" }, t("paramEdit.choices"), choices);
    const element = h(
      "div",
      { class: "param-row" },
      h("label", {}, t("paramEdit.name"), name),
      h("label", {}, t("paramEdit.labelField"), label),
      h("label", {}, t("paramEdit.type"), type),
      h("label", {}, t("paramEdit.default"), value),
      choicesField,
      remove,
      problem,
    );
    const row: Row = { element, name, label, type, value, choices, problem };
    const typed = () => {
      value.type = type.value === "number" ? "number" : type.value === "date" ? "date" : "text";
      value.step = type.value === "number" ? "any" : "";
      choicesField.hidden = type.value !== "choice";
    };
    type.addEventListener("change", typed);
    typed();
    remove.setAttribute("aria-label", t("paramEdit.remove", { name: p.name || t("paramEdit.unnamed") }));
    name.addEventListener("input", () => remove.setAttribute("aria-label", t("paramEdit.remove", { name: name.value || t("paramEdit.unnamed") })));
    remove.addEventListener("click", () => {
      this.rows = this.rows.filter((r) => r !== row);
      element.remove();
      this.update();
    });
    this.rows.push(row);
    this.list.append(element);
    this.update();
  }

  private update(): void {
    this.none.hidden = this.rows.length > 0;
    this.add.disabled = this.rows.length >= MAX_PARAMETERS;
  }
}
