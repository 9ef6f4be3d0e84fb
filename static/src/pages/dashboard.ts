// One dashboard, live: its cards on a 12-column grid with outputs pushed as they change, who else
// is looking, the parameters form; edit mode (owners and editors) moves, resizes, adds and removes
// cards and saves a new version; owners share it.

import { GridStack, type GridItemHTMLElement } from "gridstack";
import "gridstack/dist/gridstack.min.css";
import "../dashboards/dashboards.css";
import { dashboardsApi, placeCard, type CardResult, type Dashboard, type DashboardDocument } from "../api/dashboards";
import { ApiError, errorText } from "../api/errors";
import { banner } from "../components/banner";
import { chooseCard } from "../dashboards/add-card";
import { DashboardLive, type SnapshotCard } from "../dashboards/live";
import { ParametersForm } from "../dashboards/parameters";
import { presence } from "../dashboards/presence";
import { Tile, type Staleness } from "../dashboards/tile";
import { h } from "../dom";
import type { Page } from "../router";
import { openShareDialog } from "./share-dialog";
import { locale, t } from "../i18n";
import { confirmDialog } from "../components/dialog";
import { openSettings, refreshText } from "../dashboards/settings-dialog";
import { openVersions, type Restored } from "../dashboards/versions-dialog";
import { TvMode } from "../dashboards/tv-mode";

const CELL_HEIGHT = 64;
const NARROW = 760; // px of grid width at and below which the tiles stack in one column

export async function dashboardPage(id: string, go: (path: string) => void, tv = false): Promise<Page> {
  try {
    return new DashboardPage(await dashboardsApi.get(id), go, tv);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return { element: unavailable(t("dashboard.missing")) };
    throw error;
  }
}

// The cells top to bottom, and left to right within a row: the order a person reads them in, which a
// narrow screen's one column keeps.
function readingOrder(cells: DashboardDocument["layout"]): DashboardDocument["layout"] {
  return [...cells].sort((a, b) => a.y - b.y || a.x - b.x);
}

// What a person sees for a dashboard they cannot open (never shared, revoked or deleted).
function unavailable(reason: string): HTMLElement {
  return h(
    "div",
    { class: "page" },
    h("div", { class: "empty dash-gone" }, h("h1", {}, t("dashboard.unavailable")), h("p", { class: "muted" }, reason), h("p", { class: "muted small" }, t("dashboard.askOwner")), h("a", { href: "/dashboards", class: "button primary" }, t("dashboard.goList"))),
  );
}

class DashboardPage implements Page {
  readonly element: HTMLElement;
  private dashboard: Dashboard;
  private draft: DashboardDocument | null = null; // the document being edited, in edit mode
  private draftFrom = 0; // the version it was edited from
  private cards: Record<string, SnapshotCard> = {};
  private tiles = new Map<string, Tile>();
  private personalKeys = new Set<string>(); // cards showing this viewer's own parameter values
  private grid: GridStack;
  private gridElement = h("div", { class: "grid-stack" });
  private empty = h("div", { class: "empty" });
  private heading = h("h1", {});
  private description = h("p", { class: "muted dash-description" });
  private schedule = h("p", { class: "muted small dash-schedule" });
  private liveState = h("span", { class: "live-state" });
  private presence = h("div", {});
  private messages = h("div", { class: "dash-messages" });
  private editHint = h("p", { class: "edit-hint small" }, h("strong", {}, t("dashboard.editHintStrong")), t("dashboard.editHint"));
  private actions = h("div", { class: "dash-actions" });
  private closeMenu = (): boolean => false; // closes the "more" menu; whether it was open
  private parameters: ParametersForm;
  private live: DashboardLive;
  private ticker = window.setInterval(() => this.tick(), 30_000);
  private tv: TvMode;

  constructor(
    dashboard: Dashboard,
    private go: (path: string) => void,
    tv: boolean,
  ) {
    this.dashboard = dashboard;
    this.parameters = new ParametersForm(
      (values) => this.applyValues(values),
      () => this.live.send({ type: "resync" }), // the snapshot brings the shared outputs back
    );
    this.element = h(
      "div",
      { class: "page dash-page" },
      h("header", { class: "page-head" }, h("a", { href: "/dashboards", class: "back", "aria-label": t("dashboard.back") }, "‹"), h("div", { class: "dash-heading" }, this.heading, this.description, this.schedule), h("span", { class: "spacer" }), this.liveState, this.presence, this.actions),
      this.messages,
      this.editHint,
      this.parameters.element,
      this.empty,
      this.gridElement,
    );
    // One column on narrow screens, in reading order (top to bottom, left to right in each row).
    this.grid = GridStack.init({ column: 12, cellHeight: CELL_HEIGHT, margin: 8, staticGrid: true, handle: ".tile-head", columnOpts: { breakpoints: [{ w: NARROW, c: 1 }], layout: "list" } }, this.gridElement)!;
    this.tv = new TvMode(this.element, () => this.renderActions());
    if (tv) this.tv.enter();
    this.render();
    this.live = new DashboardLive(dashboard.id, {
      snapshot: (d, cards) => this.snapshot(d, cards),
      output: (key, result, personal) => this.output(key, result, personal),
      presence: (viewers) => this.presence.replaceChildren(presence(viewers)),
      queued: (key, position, personal) => this.queued(key, position, personal),
      newData: (datasetId, version) => this.newData(datasetId, version),
      state: (state) => this.showState(state),
      ended: (code, message) => this.ended(code, message),
      error: (message) => this.say(banner("error", t("dashboard.actionFailed"), [message])),
    });
  }

  leave(): void {
    this.tv.exit();
    this.live.close();
    window.clearInterval(this.ticker);
    this.grid.destroy(false);
  }

  private get editable(): boolean {
    return this.dashboard.access === "owner" || this.dashboard.access === "edit";
  }

  private say(message: HTMLElement | null): void {
    this.messages.replaceChildren(...(message ? [message] : []));
  }

  private showState(state: "connecting" | "live" | "reconnecting"): void {
    this.liveState.className = `live-state ${state}`;
    this.liveState.textContent = t(state === "live" ? "dashboard.live" : state === "connecting" ? "dashboard.connecting" : "dashboard.reconnecting");
  }

  private snapshot(dashboard: Dashboard, cards: Record<string, SnapshotCard>): void {
    const newer = dashboard.version !== this.dashboard.version;
    this.dashboard = dashboard;
    this.cards = cards;
    if (this.draft) {
      if (newer) this.say(banner("warning", t("dashboard.newerVersion", { n: dashboard.version }), [t("dashboard.newerVersionBody")]));
      return;
    }
    this.render();
  }

  private output(key: string, result: CardResult, personal: boolean): void {
    if (!personal && this.cards[key]) this.cards[key].result = result;
    if (personal) this.personalKeys.add(key);
    else if (this.personalKeys.has(key)) return; // keep showing this viewer's own values
    if (!this.draft) this.tiles.get(key)?.show(result, personal);
    if (!personal) this.tiles.get(key)?.stale(this.staleness(this.cards[key], result));
  }

  private queued(key: string, position: number, personal: boolean): void {
    if (this.draft || (!personal && this.personalKeys.has(key))) return; // the tile shows this viewer's own values
    this.tiles.get(key)?.queued(position);
  }

  private newData(datasetId: string, version: number): void {
    for (const card of Object.values(this.cards)) {
      if (card.dataset_versions && datasetId in card.dataset_versions) card.dataset_versions[datasetId] = Math.max(card.dataset_versions[datasetId], version);
    }
    this.tick();
  }

  // Each tile's relative time again, and whether a newer output is due: a dataset it read has a newer
  // version, or its dashboard's refresh round came after the output was computed.
  private tick(): void {
    if (this.draft) return;
    for (const [key, tile] of this.tiles) {
      tile.tick();
      if (!this.personalKeys.has(key)) tile.stale(this.staleness(this.cards[key], tile.shown));
    }
  }

  private staleness(card: SnapshotCard | undefined, result: CardResult | null): Staleness {
    if (!card || !result?.computed_at) return null;
    const read = result.dataset_versions ?? {};
    if (Object.entries(card.dataset_versions ?? {}).some(([id, version]) => id in read && read[id] < version)) return "new_data";
    const every = this.dashboard.document.refresh?.every_seconds;
    if (!every) return null;
    // Rounds are counted from the dashboard's creation (as the server does); a round's runs take a while.
    const created = new Date(this.dashboard.created_at).getTime();
    const round = created + Math.floor((Date.now() - created) / (every * 1000)) * every * 1000;
    return round > created && new Date(result.computed_at).getTime() < round ? "due" : null;
  }

  // Runs the cards that take any of `values` for this viewer alone; they show as running meanwhile.
  private applyValues(values: Record<string, unknown>): void {
    for (const [key, card] of Object.entries(this.cards)) {
      if (card.parameters.some((p) => p.name in values)) this.tiles.get(key)?.running();
    }
    this.live.send({ type: "parameters", values });
  }

  private ended(code: number, message: string): void {
    this.live.close();
    this.element.replaceChildren(unavailable(code === 4404 ? t("dashboard.deleted") : code === 4403 ? t("dashboard.revoked") : message).firstElementChild!);
  }

  // The header, the form and the grid from the current dashboard (or the draft in edit mode).
  private render(): void {
    const document = this.draft ?? this.dashboard.document;
    this.heading.textContent = document.title;
    this.description.textContent = document.description ?? "";
    this.description.hidden = !document.description;
    const every = document.refresh?.every_seconds;
    this.schedule.textContent = every ? t("dashboard.schedule", { every: refreshText(every) }) : "";
    this.schedule.hidden = !every;
    this.parameters.set(this.draft ? [] : document.parameters ?? []);
    this.renderActions();
    this.element.classList.toggle("editing", this.draft !== null);
    this.editHint.hidden = this.draft === null;
    this.grid.removeAll(false);
    this.gridElement.querySelectorAll(".grid-stack-item").forEach((item) => item.remove());
    this.tiles.clear();
    this.personalKeys.clear();
    // The cells go where the document puts them on 12 columns, then stack in reading order on a narrow
    // screen (placed straight into one column, the top-left one ended at the bottom).
    this.grid.column(12, "none");
    for (const cell of readingOrder(document.layout)) this.place(cell.card, cell);
    const width = this.gridElement.clientWidth || window.innerWidth; // the window's before the page is shown
    if (width <= NARROW) this.grid.column(1, "list");
    this.grid.setStatic(this.draft === null);
    this.empty.hidden = document.layout.length > 0;
    this.empty.replaceChildren(
      h("h2", {}, t("dashboard.empty")),
      h("p", { class: "muted" }, this.editable ? t("dashboard.emptyEditable") : t("dashboard.emptyViewer")),
    );
  }

  private place(key: string, cell: { x: number; y: number; w: number; h: number }): void {
    const entry = (this.draft ?? this.dashboard.document).cards.find((c) => c.key === key);
    const cardId = this.cards[key]?.card_id ?? entry?.card;
    const tile = new Tile(key, {
      rerun: this.editable && !this.draft ? () => this.rerun(key) : undefined,
      remove: this.draft ? () => this.removeCard(key) : undefined,
      open: cardId ? `/cards/${encodeURIComponent(cardId)}` : undefined,
      openToView: !this.editable,
    });
    tile.setTitle(this.cards[key]?.title ?? entry?.title ?? t("common.newCard"));
    const result = this.cards[key]?.result;
    if (this.draft && !this.cards[key]) tile.note(t("dashboard.saveToRun"));
    else if (result) tile.show(result, false);
    else tile.running();
    if (result && !this.draft) tile.stale(this.staleness(this.cards[key], result));
    this.tiles.set(key, tile);
    const item = h("div", { class: "grid-stack-item" }, h("div", { class: "grid-stack-item-content" }, tile.element));
    this.gridElement.append(item);
    this.grid.makeWidget(item, { id: key, ...cell });
  }

  // Runs the card with the shared values; its new output reaches every viewer over the socket.
  private async rerun(key: string): Promise<void> {
    this.personalKeys.delete(key);
    await dashboardsApi.run(this.dashboard.id, key, true);
  }

  private renderActions(): void {
    const open = this.closeMenu(); // the menu made again stays open
    const buttons: HTMLElement[] = [];
    const button = (label: string, kind: string, action: () => void) => {
      const b = h("button", { type: "button", class: kind }, label);
      b.addEventListener("click", action);
      return b;
    };
    if (this.tv.on) {
      buttons.push(button(t("tv.exit"), "ghost tv-exit", () => this.tv.exit()));
    } else if (this.draft) {
      const save = h("button", { type: "button", class: "primary" }, t("common.save"));
      save.addEventListener("click", () => void this.save(save));
      buttons.push(button(t("dashboard.addCard"), "ghost", () => void this.addCard()), button(t("common.cancel"), "ghost", () => this.stopEditing()), save);
    } else {
      buttons.push(button(t("tv.enter"), "ghost", () => this.tv.enter()));
      if (this.editable) {
        buttons.push(button(t("common.share"), "ghost", () => openShareDialog(this.dashboard.id, this.dashboard.document.title, this.dashboard.access === "owner")));
        buttons.push(button(t("common.edit"), "secondary", () => this.startEditing()));
      } else {
        buttons.push(h("span", { class: "pill view" }, t("dashboard.viewOnly")));
      }
      buttons.push(this.menu(open));
    }
    this.actions.replaceChildren(...buttons);
  }

  // The other actions: settings (owners and editors), version history, export, duplicate, delete (owners). Open
  // from the start when ``open`` (it was open when the actions were made again: a snapshot came meanwhile).
  private menu(open: boolean): HTMLElement {
    const toggle = h("button", { type: "button", class: "ghost menu-toggle", "aria-haspopup": "true", "aria-expanded": "false" }, t("dashboard.more"));
    const items = h("div", { class: "menu-items", hidden: true });
    const menu = h("div", { class: "menu" }, toggle, items);
    const show = (open: boolean) => {
      items.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) document.addEventListener("click", outside, true);
      else document.removeEventListener("click", outside, true);
    };
    const outside = (event: Event) => {
      if (!menu.contains(event.target as Node)) show(false);
    };
    toggle.addEventListener("click", () => show(toggle.getAttribute("aria-expanded") !== "true"));
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") show(false);
    });
    const item = (label: string, action: () => void, danger = false) => {
      const b = h("button", { type: "button", class: danger ? "ghost danger-text" : "ghost" }, label);
      b.addEventListener("click", () => {
        show(false);
        action();
      });
      items.append(b);
    };
    if (this.editable) item(t("dashboard.settings"), () => void this.settings());
    item(t("dashboard.versions"), () => void this.versions());
    item(t("dashboard.export"), () => void this.exportFile());
    item(t("dashboard.duplicate"), () => void this.duplicate());
    if (this.dashboard.access === "owner") item(t("common.delete"), () => void this.remove(), true);
    this.closeMenu = () => {
      const wasOpen = !items.hidden;
      show(false);
      return wasOpen;
    };
    show(open);
    return menu;
  }

  private done(text: string, lines: string[] = []): void {
    const note = banner("success", text, lines);
    this.say(note);
    setTimeout(() => note.remove(), 6000);
  }

  private async settings(): Promise<void> {
    const saved = await openSettings(this.dashboard);
    if (!saved) return;
    this.dashboard = saved;
    this.render();
    this.done(t("editor.savedAs", { n: saved.version }));
  }

  private async versions(): Promise<void> {
    const restored: Restored | null = await openVersions(this.dashboard, this.editable);
    if (!restored) return;
    this.dashboard = restored.dashboard;
    this.render();
    const titles = restored.leftOut.map((entry) => entry.title ?? entry.key).join(t("common.listSeparator"));
    this.done(t("versions.restored", { from: restored.from, n: restored.dashboard.version }), restored.leftOut.length ? [t("versions.leftOut", { cards: titles })] : []);
  }

  private async exportFile(): Promise<void> {
    try {
      await dashboardsApi.exportFile(this.dashboard.id, this.dashboard.document.title);
    } catch (error) {
      this.say(banner("error", t("dashboard.exportFailed"), [(error as Error).message]));
    }
  }

  private async duplicate(): Promise<void> {
    try {
      const copy = await dashboardsApi.duplicate(this.dashboard.id, t("dashboard.copyTitle", { title: this.dashboard.document.title }).slice(0, 200));
      this.go(`/dashboards/${encodeURIComponent(copy.id)}`);
    } catch (error) {
      this.say(banner("error", t("dashboard.duplicateFailed"), [(error as Error).message]));
    }
  }

  private async remove(): Promise<void> {
    const title = this.dashboard.document.title;
    if (!(await confirmDialog(t("dashboard.deleteHeading"), [t("dashboard.deleteQuestion", { title })], t("common.delete")))) return;
    try {
      await dashboardsApi.remove(this.dashboard.id);
      this.live.close();
      this.go("/dashboards");
    } catch (error) {
      this.say(banner("error", t("dashboard.deleteFailed"), [(error as Error).message]));
    }
  }

  private startEditing(): void {
    this.draft = structuredClone(this.dashboard.document);
    this.draftFrom = this.dashboard.version;
    this.say(null);
    this.render();
  }

  private stopEditing(): void {
    this.draft = null;
    this.say(null);
    this.render();
  }

  private removeCard(key: string): void {
    if (!this.draft) return;
    this.draft.cards = this.draft.cards.filter((c) => c.key !== key);
    this.draft.layout = this.draft.layout.filter((c) => c.card !== key);
    const item = this.gridElement.querySelector<GridItemHTMLElement>(`.grid-stack-item[gs-id="${CSS.escape(key)}"]`);
    if (item) this.grid.removeWidget(item);
    this.tiles.delete(key);
    this.empty.hidden = this.draft.layout.length > 0;
  }

  private async addCard(): Promise<void> {
    if (!this.draft) return;
    const here = new Set(Object.values(this.cards).map((c) => c.card_id));
    const chosen = await chooseCard(here, "/cards/new");
    if (!chosen || !this.draft) return;
    const [cardId, title] = chosen;
    const key = placeCard(this.draft, cardId, this.layoutNow());
    const cell = this.draft.layout.find((c) => c.card === key)!;
    this.place(key, cell);
    this.tiles.get(key)?.setTitle(title);
    this.empty.hidden = true;
  }

  // The cells as the grid has them now (after drags and resizes); on a narrow screen's one column, whose
  // places are not the document's, as they were.
  private layoutNow(): DashboardDocument["layout"] {
    if (this.grid.getColumn() !== 12) return (this.draft ?? this.dashboard.document).layout;
    return this.grid.getGridItems().map((item) => {
      const node = item.gridstackNode!;
      return { card: String(node.id), x: node.x ?? 0, y: node.y ?? 0, w: node.w ?? 1, h: node.h ?? 1 };
    });
  }

  private async save(button: HTMLButtonElement): Promise<void> {
    if (!this.draft) return;
    const document = { ...this.draft, layout: this.layoutNow() };
    button.disabled = true;
    try {
      const saved = await dashboardsApi.save(this.dashboard.id, this.draftFrom, document);
      this.dashboard = saved;
      this.draft = null;
      this.render();
      const done = banner("success", t("editor.savedAs", { n: saved.version }));
      this.say(done);
      setTimeout(() => done.remove(), 5000);
    } catch (error) {
      this.say(this.saveProblem(error));
    } finally {
      button.disabled = false;
    }
  }

  private saveProblem(error: unknown): HTMLElement {
    if (error instanceof ApiError && error.status === 409) {
      const reload = h("button", { type: "button", class: "secondary" }, t("dashboard.discard"));
      reload.addEventListener("click", () => {
        this.live.send({ type: "resync" });
        this.stopEditing();
      });
      const current = error.details.current_version;
      return banner("warning", t("dashboard.conflictTitle"), [t("dashboard.conflictBody", { from: this.draftFrom, current: typeof current === "number" ? current : t("dashboard.newer") })], [reload]);
    }
    // A bad document (422) or a card that is gone (404) names the place in the document.
    const pointer = error instanceof ApiError ? String(error.details.pointer ?? "") : "";
    if (pointer) {
      const problem = error as ApiError;
      const reason = locale() === "ja" ? errorText(problem.code, {}, problem.serverMessage) : String(problem.details.reason ?? problem.serverMessage.replace(`${pointer}: `, ""));
      const key = this.draft?.cards[Number(/^\/cards\/(\d+)/.exec(pointer)?.[1] ?? NaN)]?.key;
      const tile = key === undefined ? undefined : this.tiles.get(key);
      tile?.element.classList.add("problem");
      const where = tile ? t("dashboard.problemCard", { title: tile.element.getAttribute("aria-label") ?? "" }) : "";
      return banner("error", t("dashboard.problemTitle"), [h("p", {}, h("code", {}, pointer), where, " — ", reason)]);
    }
    return banner("error", t("editor.notSaved"), [(error as Error).message]);
  }
}
