// A card opened by someone who may view it but not change it (a dashboard shared with them to view): its
// code read-only, no Save and no editing session; Run runs its saved version with the values they choose
// (the results are theirs alone).

import type { EditorView } from "@codemirror/view";
import { cardsApi, type Card } from "../api/cards";
import type { Parameter } from "../api/dashboards";
import { banner } from "../components/banner";
import { codeViewer } from "../cards/code-editor";
import { RunStatus } from "../cards/run-status";
import { parameterField, parameterValues, type ParameterInput } from "../dashboards/parameters";
import { h } from "../dom";
import { t } from "../i18n";
import { OutputArea } from "../outputs/area";
import type { Page } from "../router";

export class CardViewer implements Page {
  readonly element: HTMLElement;
  readonly title: string;
  private outputs = new OutputArea();
  private status = new RunStatus();
  private messages = h("div", { class: "editor-messages" });
  private placeholder = h("div", { class: "outputs-empty" }, h("p", {}, t("viewer.outputsEmpty")));
  private runButton = h("button", { type: "submit", class: "primary" }, t("editor.run"));
  private inputs = new Map<string, ParameterInput>();
  private code: EditorView;

  constructor(private card: Card) {
    this.title = card.title;
    const parameters = card.parameters as Parameter[];
    const fields = parameters.map((p) => {
      const [field, input] = parameterField(p);
      this.inputs.set(p.name, input);
      return field;
    });
    const form = h("form", { class: "toolbar viewer-run", "aria-label": t("viewer.runLabel") }, ...fields, this.runButton, this.status.element);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.run();
    });
    const codePane = h("section", { class: "code-pane", "aria-label": t("editor.code") });
    this.element = h(
      "div",
      { class: "page editor-page viewer-page" },
      h("header", { class: "page-head" }, h("a", { href: "/dashboards", class: "back", "aria-label": t("dashboard.back") }, "‹"), h("h1", { class: "viewer-title" }, card.title), h("span", { class: "pill view" }, t("dashboard.viewOnly")), h("span", { class: "save-state" }, t("common.version", { n: card.version }))),
      banner("info", t("viewer.lead"), [parameters.length ? t("viewer.leadParameters") : t("viewer.leadNoParameters")]),
      this.messages,
      form,
      h("div", { class: "editor-split" }, codePane, h("section", { class: "output-pane", "aria-label": t("editor.outputs") }, this.placeholder, this.outputs.element)),
    );
    this.code = codeViewer(codePane, card.code);
  }

  leave(): void {
    this.status.stopTimer();
    this.code.destroy();
  }

  private async run(): Promise<void> {
    this.runButton.disabled = true;
    this.messages.replaceChildren();
    this.status.busy();
    try {
      const result = await cardsApi.run(this.card.id, parameterValues(this.card.parameters as Parameter[], this.inputs));
      this.placeholder.hidden = true;
      this.outputs.clear();
      for (const output of result.outputs) this.outputs.add(output);
      const ms = typeof result.execution_time_ms === "number" ? result.execution_time_ms : undefined;
      this.status.finished(result.status === "ok" ? "ok" : "error", t(result.status === "ok" ? "run.ok" : result.status === "timeout" ? "run.timeout" : "run.error"), result.cached ? undefined : ms);
    } catch (error) {
      this.status.finished("error", t("run.notRun"));
      this.messages.replaceChildren(banner("error", (error as Error).message));
    } finally {
      this.runButton.disabled = false;
    }
  }
}
