// One card on a dashboard: its title, when its output was made, Re-run (editors), and the output.

import type { CardResult } from "../api/dashboards";
import { h } from "../dom";
import { clock, seconds } from "../format";
import { t } from "../i18n";
import { OutputArea } from "../outputs/area";

export interface TileActions {
  rerun?(): Promise<void>;
  remove?(): void;
  open?: string;
}

export class Tile {
  readonly element: HTMLElement;
  private outputs = new OutputArea();
  private title = h("h2", { class: "tile-title" });
  private meta = h("span", { class: "tile-meta muted small" });
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
    this.element = h(
      "article",
      { class: "tile", "data-key": key, "aria-label": key },
      h("header", { class: "tile-head" }, h("div", { class: "tile-heading" }, this.title, this.meta), actions.open ? this.openLink : null, actions.rerun ? this.rerunButton : null, actions.remove ? this.removeButton : null),
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

  show(result: CardResult, personal: boolean): void {
    this.element.classList.remove("busy");
    this.element.classList.toggle("personal", personal);
    this.element.dataset.status = result.status;
    this.outputs.clear();
    for (const output of result.outputs) this.outputs.add(output);
    if (!result.outputs.length) this.outputs.note(t("tile.nothing"));
    const at = clock(new Date(), true);
    const took = result.execution_time_ms !== undefined && !result.cached ? t("tile.took", { time: seconds(result.execution_time_ms) }) : "";
    this.meta.textContent = (personal ? t("tile.yourValues", { when: at }) : t("tile.updated", { when: at })) + took;
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
