// The busy indicator: a spinner and the elapsed time while a run goes on, then how it ended.

import { h } from "../dom";
import { elapsed, seconds } from "../format";
import { t } from "../i18n";

export class RunStatus {
  readonly element = h("span", { class: "run-status", role: "status", "aria-live": "polite" });
  private timer = 0;

  busy(): void {
    const started = performance.now();
    this.stopTimer();
    const clock = h("span", { class: "elapsed" }, elapsed(0));
    this.element.className = "run-status busy";
    this.element.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), t("run.running"), clock);
    this.timer = window.setInterval(() => (clock.textContent = elapsed(performance.now() - started)), 100);
  }

  finished(tone: "ok" | "error" | "idle", text: string, ms?: number): void {
    this.stopTimer();
    this.element.className = `run-status ${tone}`;
    this.element.replaceChildren(ms === undefined ? text : t("run.in", { text, time: seconds(ms) }));
  }

  stopTimer(): void {
    window.clearInterval(this.timer);
  }
}
