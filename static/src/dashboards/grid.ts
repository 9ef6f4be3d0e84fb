// The 12-column grid of a dashboard's cards (gridstack): fixed while viewing; in edit mode cards
// move and resize, and the layout is read back from it.

import "gridstack/dist/gridstack.min.css";
import { GridStack } from "gridstack";
import type { Cell } from "../api/dashboards";
import { h } from "../dom";

export class CardGrid {
  readonly element = h("div", { class: "grid-stack dashboard-grid" });
  private grid: GridStack | null = null;

  // Call once the element is in the document.
  mount(): void {
    this.grid = GridStack.init({ column: 12, cellHeight: 72, margin: 6, mode: "float", staticGrid: true, animate: false }, this.element);
  }

  place(cell: Cell, tile: HTMLElement): void {
    const item = h("div", { class: "grid-stack-item", "gs-id": cell.card, "gs-x": cell.x, "gs-y": cell.y, "gs-w": cell.w, "gs-h": cell.h },
      h("div", { class: "grid-stack-item-content" }, tile));
    this.element.append(item);
    this.grid?.makeWidget(item);
  }

  remove(key: string): void {
    const item = this.element.querySelector(`[gs-id="${CSS.escape(key)}"]`);
    if (item) this.grid?.removeWidget(item as HTMLElement);
  }

  clear(): void {
    this.grid?.removeAll();
  }

  editable(on: boolean): void {
    this.grid?.setStatic(!on);
    this.element.classList.toggle("editing", on);
  }

  // The layout as the grid holds it now.
  layout(): Cell[] {
    return this.grid!.getGridItems().map((item) => {
      const node = item.gridstackNode!;
      return { card: String(node.id), x: node.x ?? 0, y: node.y ?? 0, w: node.w ?? 6, h: node.h ?? 4 };
    });
  }

  // The first free row below every card.
  bottom(): number {
    return Math.max(0, ...this.layout().map((cell) => cell.y + cell.h));
  }

  destroy(): void {
    this.grid?.destroy(false);
  }
}
