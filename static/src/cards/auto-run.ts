// Auto-run: the card re-runs when typing pauses. On by default for a card whose last run took under a
// second; the toggle is remembered per card (in this browser).

import { h } from "../dom";
import { t } from "../i18n";

export const PAUSE_MS = 300;
const QUICK_RUN_MS = 1000;
const key = (cardId: string | null) => `bi.autorun.${cardId ?? "new"}`;

export class AutoRun {
  readonly element: HTMLElement;
  private box = h("input", { type: "checkbox" }) as HTMLInputElement;
  private timer = 0;

  constructor(
    private cardId: string | null,
    private fire: () => void,
  ) {
    this.box.checked = localStorage.getItem(key(cardId)) === "on";
    this.box.addEventListener("change", () => {
      localStorage.setItem(key(this.cardId), this.box.checked ? "on" : "off");
      if (!this.box.checked) window.clearTimeout(this.timer);
    });
    this.element = h("label", { class: "auto-run", title: t("editor.autoRunTitle") }, this.box, t("editor.autoRun"));
  }

  get on(): boolean {
    return this.box.checked;
  }

  // The code changed: run once typing has paused.
  changed(): void {
    if (!this.on) return;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(this.fire, PAUSE_MS);
  }

  // A run finished in `ms`: with no choice made for this card yet, quick cards get auto-run.
  ran(ms: number): void {
    if (localStorage.getItem(key(this.cardId)) === null) this.box.checked = ms < QUICK_RUN_MS;
  }

  // The card was saved: a choice made while it was new moves with it.
  saved(cardId: string): void {
    const choice = this.cardId === null ? localStorage.getItem(key(null)) : null;
    if (choice !== null) {
      localStorage.setItem(key(cardId), choice);
      localStorage.removeItem(key(null));
    }
    this.cardId = cardId;
  }

  stop(): void {
    window.clearTimeout(this.timer);
  }
}
