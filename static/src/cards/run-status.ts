// The busy indicator: a spinner and the elapsed time while a run goes on, then how it ended.

import { h } from "../dom";
import { seconds } from "../format";

export class RunStatus {
  readonly element = h("span", { class: "run-status", role: "status", "aria-live": "polite" });
  private timer = 0;

  busy(): void {
    const started = performance.now();
    this.stopTimer();
    const clock = h("span", { class: "elapsed" }, "0.0 s");
    this.element.className = "run-status busy";
    this.element.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), "Running… ", clock);
    this.timer = window.setInterval(() => (clock.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`), 100);
  }

  finished(tone: "ok" | "error" | "idle", text: string, ms?: number): void {
    this.stopTimer();
    this.element.className = `run-status ${tone}`;
    this.element.replaceChildren(ms === undefined ? text : `${text} in ${seconds(ms)}`);
  }

  stopTimer(): void {
    window.clearInterval(this.timer);
  }
}
