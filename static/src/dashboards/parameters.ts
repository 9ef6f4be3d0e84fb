// The dashboard's parameters as a form. Applying values asks for personal outputs; "Shared view"
// goes back to the defaults everyone sees.

import type { Parameter } from "../api/dashboards";
import { h } from "../dom";
import { t } from "../i18n";

export class ParametersForm {
  readonly element = h("form", { class: "parameters", "aria-label": t("params.label"), hidden: true });
  private inputs = new Map<string, ParameterInput>();
  private parameters: Parameter[] = [];
  private note = h("span", { class: "parameters-note small" });
  private back = h("button", { type: "button", class: "ghost" }, t("params.back"));

  constructor(
    private apply: (values: Record<string, unknown>) => void,
    private reset: () => void,
  ) {
    this.element.addEventListener("submit", (event) => {
      event.preventDefault();
      this.apply(this.values());
      this.personal(true);
    });
    this.back.addEventListener("click", () => {
      this.fill();
      this.personal(false);
      this.reset();
    });
  }

  // Shows `parameters` at their defaults: the shared view that a snapshot brings.
  set(parameters: Parameter[]): void {
    if (JSON.stringify(parameters) === JSON.stringify(this.parameters)) {
      this.fill();
      this.personal(false);
      return;
    }
    this.parameters = parameters;
    this.inputs.clear();
    this.element.hidden = parameters.length === 0;
    const fields = parameters.map((p) => {
      const [field, input] = parameterField(p);
      this.inputs.set(p.name, input);
      return field;
    });
    this.fill();
    this.element.replaceChildren(...fields, h("button", { type: "submit", class: "secondary" }, t("common.apply")), this.back, this.note);
    this.personal(false);
  }

  private fill(): void {
    for (const p of this.parameters) {
      const input = this.inputs.get(p.name);
      if (input) input.value = String(p.default);
    }
  }

  private personal(on: boolean): void {
    this.element.classList.toggle("personal", on);
    this.back.hidden = !on;
    this.note.textContent = on ? t("params.personal") : t("params.shared");
  }

  private values(): Record<string, unknown> {
    return parameterValues(this.parameters, this.inputs);
  }
}

export type ParameterInput = HTMLInputElement | HTMLSelectElement;

// A labelled input for one parameter (its label, else its name), at its default.
export function parameterField(p: Parameter): [HTMLElement, ParameterInput] {
  const input = p.type === "choice" ? h("select", { name: p.name }, (p.choices ?? []).map((c) => h("option", { value: String(c) }, String(c)))) : h("input", { name: p.name, type: p.type === "number" ? "number" : p.type === "date" ? "date" : "text", step: p.type === "number" ? "any" : null });
  input.value = String(p.default);
  return [h("label", { class: "parameter" }, p.label || p.name, input), input];
}

// The values typed in `inputs` (by name), as the parameters' types take them.
export function parameterValues(parameters: Parameter[], inputs: Map<string, ParameterInput>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const p of parameters) {
    const raw = inputs.get(p.name)?.value ?? "";
    const choice = p.choices?.find((c) => String(c) === raw);
    values[p.name] = p.type === "number" ? Number(raw) : choice ?? raw;
  }
  return values;
}
