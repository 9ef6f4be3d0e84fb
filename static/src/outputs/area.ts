// A list of outputs that grows as they stream in; used by the card editor and (later) dashboard tiles.

import { h } from "../dom";
import { BokehFigures } from "./bokeh";
import { bundleOutput, errorOutput, streamOutput, terminalText, type Output } from "./render";
import { truncationNotice } from "../i18n/kernel";

export class OutputArea {
  readonly element = h("div", { class: "outputs", "aria-live": "polite" });
  private figures = new BokehFigures();
  private displays = new Map<string, HTMLElement>();
  private lastStream: { name: string; el: HTMLElement; text: string } | null = null;
  private clearBeforeNext = false;

  clear(): void {
    this.element.replaceChildren();
    this.figures.clear();
    this.displays.clear();
    this.lastStream = null;
    this.clearBeforeNext = false;
  }

  // The next output replaces what is shown (a new run: no empty pane until its first output).
  replaceOnNext(): void {
    this.clearBeforeNext = true;
  }

  // The run ended: if it showed nothing, what an earlier run showed goes now.
  settle(): void {
    if (this.clearBeforeNext) this.clear();
  }

  add(output: Output): void {
    if (output.output_type === "bokeh_patch") {
      void this.figures.patch(output.root_id ?? "", output.patch);
      return;
    }
    if (output.output_type === "clear_output") {
      if (output.wait) this.clearBeforeNext = true;
      else this.clear();
      return;
    }
    if (this.clearBeforeNext) this.clear();
    if (output.output_type === "stream") return this.addStream(output.name ?? "stdout", output.text ?? "");
    this.lastStream = null;
    if (output.output_type === "error") return this.show(errorOutput(output));
    const el = bundleOutput(output, this.figures);
    if (output.output_type === "update_display_data") {
      this.displays.get(output.display_id ?? "")?.replaceWith(el);
    } else {
      this.show(el);
    }
    if (output.display_id) this.displays.set(output.display_id, el);
  }

  // A note from the page itself (a timeout, a restarted kernel), shown among the outputs.
  note(text: string, tone: "info" | "error" = "info"): void {
    this.lastStream = null;
    this.show(h("p", { class: `output-note ${tone}` }, text));
  }

  private addStream(name: string, text: string): void {
    if (name === "stderr" && truncationNotice(text)) {
      // Output cut at the cap: the notice goes first, not after everything that came before it.
      this.lastStream = null;
      this.element.prepend(h("div", { class: "output" }, streamOutput(name, text)));
      return;
    }
    if (this.lastStream?.name === name) {
      this.lastStream.text += text;
      this.lastStream.el.textContent = terminalText(this.lastStream.text);
      return;
    }
    const el = streamOutput(name, text);
    this.lastStream = { name, el, text };
    this.show(el);
  }

  private show(el: HTMLElement): void {
    this.element.append(h("div", { class: "output" }, el));
  }
}
