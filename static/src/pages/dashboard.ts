// One dashboard, live: its cards on the grid with outputs pushed as they change, who else is
// watching, the parameters form (my own runs), and for editors an edit mode and re-runs.

import "../dashboards/dashboards.css";
import { cardsApi } from "../api/cards";
import { ApiError } from "../api/errors";
import { dashboardsApi, type Dashboard, type Parameter, type RunResult } from "../api/dashboards";
import { banner } from "../components/banner";
import { CardGrid } from "../dashboards/grid";
import { DashboardConnection, type CardState, type Viewer } from "../dashboards/live";
import { openShareDialog } from "../dashboards/share-dialog";
import { h } from "../dom";
import { OutputArea } from "../outputs/area";
import type { Page } from "../router";

const NEW_CARD_HEIGHT = 6; // grid rows of 72 px: room for a chart

interface Tile {
  element: HTMLElement;
  outputs: OutputArea;
  note: HTMLElement;
}

export async function dashboardPage(id: string): Promise<Page> {
  const first = await dashboardsApi.get(id); // a 404 here is the page's "Not found"
  let dashboard: Dashboard = first;
  let cards: Record<string, CardState> = {};
  let editing = false;
  const tiles = new Map<string, Tile>();
  const grid = new CardGrid();
  const title = h("h1", {}, first.document.title);
  const presence = h("div", { class: "presence", "aria-label": "Watching now" });
  const messages = h("div", { class: "messages" });
  const form = h("form", { class: "parameters fields" });
  const toolbar = h("div", { class: "toolbar" });
  const element = h("div", { class: "page dashboard-page" },
    h("header", { class: "page-head" }, h("a", { href: "/dashboards", class: "back", "aria-label": "All dashboards" }, "‹"), title, presence, h("span", { class: "spacer" }), toolbar),
    messages, form, grid.element);

  const say = (tone: "info" | "success" | "warning" | "error", text: string, detail: string[] = []) =>
    messages.replaceChildren(banner(tone, text, detail));
  const canEdit = () => dashboard.access !== "view";

  function tile(key: string, card: CardState): Tile {
    const outputs = new OutputArea();
    const note = h("span", { class: "tile-note muted small" });
    const rerun = h("button", { type: "button", class: "ghost small rerun", title: "Run again for everyone" }, "↻ Re-run");
    rerun.addEventListener("click", async () => {
      rerun.disabled = true;
      try {
        await dashboardsApi.run(id, key); // the new output arrives over the socket
      } catch (e) {
        say("error", `“${card.title}” could not run.`, [(e as Error).message]);
      } finally {
        rerun.disabled = false;
      }
    });
    const remove = h("button", { type: "button", class: "ghost small remove", title: "Remove from the dashboard" }, "✕");
    remove.addEventListener("click", () => {
      grid.remove(key);
      tiles.delete(key);
    });
    const element = h("section", { class: "tile", "aria-label": card.title },
      h("header", { class: "tile-head" }, h("a", { href: `/cards/${encodeURIComponent(card.card_id)}`, class: "tile-title" }, card.title), note,
        h("span", { class: "spacer" }), canEdit() ? rerun : null, remove),
      h("div", { class: "tile-body" }, outputs.element));
    return { element, outputs, note };
  }

  function show(key: string, result: RunResult | null, personal: boolean): void {
    const target = tiles.get(key);
    if (!target) return;
    target.outputs.clear();
    if (result === null) {
      target.note.textContent = "running…";
      return;
    }
    for (const output of result.outputs) target.outputs.add(output);
    if (!result.outputs.length) target.outputs.note("(no output)");
    target.note.textContent = personal ? "your values" : result.cached ? "" : `${result.execution_time_ms} ms`;
    target.element.classList.toggle("personal", personal);
  }

  function render(): void {
    title.textContent = dashboard.document.title;
    grid.clear();
    tiles.clear();
    const placed = new Map(dashboard.document.layout.map((cell) => [cell.card, cell]));
    for (const entry of dashboard.document.cards) {
      const card = cards[entry.key];
      const made = tile(entry.key, card ?? { card_id: entry.card, title: "…", parameters: [], seq: 0, result: null });
      tiles.set(entry.key, made);
      grid.place(placed.get(entry.key) ?? { card: entry.key, x: 0, y: grid.bottom(), w: 6, h: NEW_CARD_HEIGHT }, made.element);
      show(entry.key, card?.result ?? null, false);
    }
    if (!dashboard.document.cards.length)
      say("info", "This dashboard has no cards yet.", canEdit() ? ["Choose Edit, then add one of your cards."] : []);
    renderParameters(dashboard.document.parameters ?? []);
    renderToolbar();
  }

  function renderParameters(parameters: Parameter[]): void {
    form.replaceChildren();
    if (!parameters.length) return;
    const inputs = parameters.map((p) => {
      const input =
        p.type === "choice"
          ? h("select", { name: p.name }, (p.choices ?? []).map((c) => h("option", { value: String(c), selected: c === p.default }, String(c))))
          : h("input", { name: p.name, type: p.type === "number" ? "number" : p.type === "date" ? "date" : "text", value: String(p.default), step: "any" });
      return { p, input };
    });
    const apply = h("button", { type: "submit", class: "secondary" }, "Apply");
    const reset = h("button", { type: "button", class: "ghost" }, "Reset");
    form.append(...inputs.map(({ p, input }) => h("label", { class: "field" }, p.label ?? p.name, input)), apply, reset);
    form.onsubmit = (event) => {
      event.preventDefault();
      const values: Record<string, unknown> = {};
      for (const { p, input } of inputs) {
        const value = p.type === "number" ? Number(input.value) : input.value;
        if (value !== p.default) values[p.name] = p.type === "choice" && typeof p.default === "number" ? Number(value) : value;
      }
      connection.parameters(values);
      say("info", Object.keys(values).length ? "Showing the cards with your values; others still see the defaults." : "Showing what everyone sees.");
    };
    reset.onclick = () => {
      for (const { p, input } of inputs) input.value = String(p.default);
      connection.parameters({});
      messages.replaceChildren();
    };
  }

  function renderToolbar(): void {
    toolbar.replaceChildren();
    if (dashboard.access === "owner") {
      const share = h("button", { type: "button" }, "Share");
      share.addEventListener("click", () => openShareDialog(id, dashboard.document.title));
      toolbar.append(share);
    }
    if (!canEdit()) return toolbar.append(h("span", { class: "access view" }, "View only"));
    if (!editing) {
      const edit = h("button", { type: "button", class: "primary" }, "Edit");
      edit.addEventListener("click", () => setEditing(true));
      return toolbar.append(edit);
    }
    const picker = h("select", { "aria-label": "Card to add" }, h("option", { value: "" }, "Add a card…"));
    void cardsApi.list().then((mine) => picker.append(...mine.map((c) => h("option", { value: c.id }, c.title))));
    picker.addEventListener("change", () => {
      const card = picker.selectedOptions[0];
      if (!picker.value) return;
      addCard(picker.value, card.textContent ?? "");
      picker.value = "";
    });
    const save = h("button", { type: "button", class: "primary" }, "Save");
    save.addEventListener("click", () => void saveLayout(save));
    const cancel = h("button", { type: "button", class: "ghost" }, "Cancel");
    cancel.addEventListener("click", () => {
      setEditing(false);
      messages.replaceChildren();
      render();
    });
    toolbar.append(picker, cancel, save);
  }

  function addCard(cardId: string, cardTitle: string): void {
    const taken = new Set(tiles.keys());
    let n = tiles.size + 1;
    while (taken.has(`card-${n}`)) n++;
    const key = `card-${n}`;
    const made = tile(key, { card_id: cardId, title: cardTitle, parameters: [], seq: 0, result: null });
    made.outputs.note("Save to run it here.");
    tiles.set(key, made);
    made.element.dataset.cardId = cardId;
    grid.place({ card: key, x: 0, y: grid.bottom(), w: 6, h: NEW_CARD_HEIGHT }, made.element);
    messages.replaceChildren();
  }

  async function saveLayout(button: HTMLButtonElement): Promise<void> {
    const known = new Map(dashboard.document.cards.map((entry) => [entry.key, entry.card]));
    const layout = grid.layout();
    const document = {
      ...dashboard.document,
      cards: layout.map((cell) => ({ key: cell.card, card: known.get(cell.card) ?? tiles.get(cell.card)!.element.dataset.cardId! })),
      layout,
    };
    button.disabled = true;
    try {
      dashboard = await dashboardsApi.save(id, dashboard.version, document);
      setEditing(false);
      connection.resync(); // what was pushed while editing was held back
      say("success", `Saved as version ${dashboard.version}.`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 409)
        say("error", "Someone saved this dashboard since you opened it.", ["Reload the page to see their version, then make your change again."]);
      else if (e instanceof ApiError && e.status === 422) say("error", "The dashboard could not be saved.", [e.message]);
      else say("error", "The dashboard could not be saved.", [(e as Error).message]);
    } finally {
      button.disabled = false;
    }
  }

  function setEditing(on: boolean): void {
    editing = on;
    if (on) say("info", "Editing the layout.", ["Drag a card by its title bar, resize it from its corner, add or remove cards, then Save."]);
    grid.editable(on);
    renderToolbar();
  }

  const connection = new DashboardConnection(id, {
    snapshot(next, nextCards, viewers) {
      dashboard = next;
      cards = nextCards;
      showPresence(viewers);
      if (!editing) render();
    },
    output(key, result, personal) {
      if (!editing) show(key, result, personal);
    },
    presence: showPresence,
    ended(reason) {
      connection.close();
      grid.element.replaceChildren();
      say("error", reason || "This dashboard is no longer available to you.");
    },
  });

  function showPresence(viewers: Viewer[]): void {
    presence.replaceChildren(...viewers.map((v) => h("span", { class: "avatar", title: `${v.name} (${v.email})` }, initials(v.name || v.email))));
  }

  return {
    element,
    title: first.document.title,
    mounted() {
      grid.mount();
      void connection.open();
    },
    leave() {
      connection.close();
      grid.destroy();
    },
  };
}

function initials(name: string): string {
  const parts = name.trim().split(/\s+/);
  return (parts.length > 1 ? parts[0][0] + parts[1][0] : name.slice(0, 2)).toUpperCase();
}
