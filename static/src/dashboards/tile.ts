// One card on a dashboard: its title, when and why its output was computed (「3分前に更新（新しいデータ）」,
// from the output's own freshness, not when the browser got it), whether a newer output is due, its place
// in line while its run waits, Re-run past the cache (editors), and the output.

import type { CardResult } from "../api/dashboards";
import { h } from "../dom";
import { clock, relative, seconds, when } from "../format";
import { has, t } from "../i18n";
import { OutputArea } from "../outputs/area";

export type Staleness = "new_data" | "due" | null;

export interface TileActions {
  rerun?(): Promise<void>;
  remove?(): void;
  open?: string;
  // The card opens read-only (a viewer's: its code, and runs with their own values).
  openToView?: boolean;
}

export class Tile {
  readonly element: HTMLElement;
  private outputs = new OutputArea();
  private title = h("h2", { class: "tile-title" });
  private meta = h("span", { class: "tile-meta muted small" });
  private notice = h("p", { class: "tile-stale small", hidden: true });
  private result: CardResult | null = null;
  private personal = false;
  private rerunButton = h("button", { type: "button", class: "ghost small", title: t("tile.rerunTitle") }, t("tile.rerun"));
  private removeButton = h("button", { type: "button", class: "ghost small tile-remove", title: t("tile.remove"), "aria-label": t("tile.remove") }, "✕");
  private openLink = h("a", { class: "small tile-open", title: t("tile.editTitle") }, t("tile.edit"));

  constructor(
    readonly key: string,
    actions: TileActions,
  ) {
    this.rerunButton.addEventListener("click", () => void this.rerun(actions));
    this.removeButton.addEventListener("click", () => actions.remove?.());
    if (actions.open) this.openLink.setAttribute("href", actions.open);
    if (actions.openToView) {
      this.openLink.textContent = t("tile.view");
      this.openLink.title = t("tile.viewTitle");
    }
    this.element = h(
      "article",
      { class: "tile", "data-key": key, "aria-label": key },
      h("header", { class: "tile-head" }, h("div", { class: "tile-heading" }, this.title, this.meta), actions.open ? this.openLink : null, actions.rerun ? this.rerunButton : null, actions.remove ? this.removeButton : null),
      this.notice,
      h("div", { class: "tile-body" }, this.outputs.element),
    );
  }

  setTitle(title: string): void {
    this.title.textContent = title;
    this.element.setAttribute("aria-label", title);
  }

  note(text: string): void {
    this.outputs.clear();
    this.outputs.note(text);
  }

  running(): void {
    this.element.classList.add("busy");
    this.meta.textContent = t("common.running");
  }

  // The run waits for its turn: 1 is next; 0 runs now.
  queued(position: number): void {
    if (position === 0) return this.running();
    this.element.classList.add("busy");
    this.meta.textContent = t("tile.queued", { n: position });
  }

  // Says that a newer output is due (its dataset has a newer version, or its refresh came), until it comes.
  stale(why: Staleness): void {
    this.notice.hidden = why === null;
    this.notice.textContent = why === "new_data" ? t("tile.staleData") : why === "due" ? t("tile.staleDue") : "";
    this.element.classList.toggle("stale", why !== null);
  }

  // The freshness of the output shown (null before one, or for one that could not run).
  get shown(): CardResult | null {
    return this.result;
  }

  show(result: CardResult, personal: boolean): void {
    this.result = result;
    this.personal = personal;
    this.element.classList.remove("busy");
    this.element.classList.toggle("personal", personal);
    this.element.dataset.status = result.status;
    this.outputs.clear();
    for (const output of result.outputs) this.outputs.add(output);
    if (!result.outputs.length) this.outputs.note(t("tile.nothing"));
    this.stale(null);
    this.tick();
  }

  // The relative time again (the page calls this every half minute).
  tick(): void {
    const result = this.result;
    if (!result) return;
    if (!result.computed_at) {
      // It did not run (refused, stopped): no time, and no run time.
      this.meta.textContent = this.personal ? t("tile.yourValues", { when: clock(new Date()) }) : t("tile.notRun");
      this.meta.removeAttribute("title");
      return;
    }
    const ago = relative(result.computed_at);
    const reasonKey = `tile.reason.${result.reason ?? ""}`;
    const reason = has(reasonKey) ? t(reasonKey) : null;
    const fresh = reason ? (ago ? t("tile.fresh", { ago, reason }) : t("tile.freshNow", { reason })) : t("tile.freshUnknown", { ago: ago ?? t("time.justNow") });
    const took = typeof result.execution_time_ms === "number" && !result.cached ? t("tile.took", { time: seconds(result.execution_time_ms) }) : "";
    this.meta.textContent = (this.personal ? t("tile.yourValues", { when: fresh }) : fresh) + took;
    this.meta.title = result.card_version ? t("tile.freshTitle", { when: when(result.computed_at), version: result.card_version }) : when(result.computed_at);
    this.element.dataset.reason = result.reason ?? "";
  }

  private async rerun(actions: TileActions): Promise<void> {
    this.rerunButton.disabled = true;
    this.running();
    try {
      await actions.rerun?.();
    } catch (error) {
      this.element.classList.remove("busy");
      this.meta.textContent = "";
      this.outputs.note(t("tile.rerunFailed", { message: (error as Error).message }), "error");
    } finally {
      this.rerunButton.disabled = false;
    }
  }
}
