// "Add to dashboard" in the card editor: choose one of the dashboards I may edit; the saved card
// is appended to its layout and the dashboard saved.

import { appendCard, dashboardsApi, type Dashboard } from "../api/dashboards";
import { banner } from "../components/banner";
import { h } from "../dom";

function chooseDashboard(dashboards: Dashboard[]): Promise<Dashboard | null> {
  return new Promise((resolve) => {
    let chosen: Dashboard | null = null;
    const cancel = h("button", { type: "button", class: "ghost" }, "Cancel");
    const items = dashboards.map((d) => {
      const pick = h("button", { type: "button", class: "card-choice" }, h("span", { class: "strong" }, d.document.title), h("span", { class: "muted small" }, `${d.document.cards.length} card${d.document.cards.length === 1 ? "" : "s"}`));
      pick.addEventListener("click", () => {
        chosen = d;
        dialog.close();
      });
      return h("li", {}, pick);
    });
    const dialog = h(
      "dialog",
      { class: "dash-dialog", "aria-label": "Add to dashboard" },
      h("h2", {}, "Add to dashboard"),
      items.length ? h("ul", { class: "card-choices" }, items) : h("p", { class: "muted" }, "You cannot edit any dashboard yet."),
      h("div", { class: "dialog-actions" }, h("a", { href: "/dashboards", class: "button" }, "Create a dashboard"), h("span", { class: "spacer" }), cancel),
    );
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (event) => (event.target as Element).closest("a") && dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(chosen);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// `cardId()` is the saved card's id, or null before its first save; `say` shows a banner.
export function addToDashboardButton(cardId: () => string | null, say: (message: HTMLElement) => void): HTMLElement {
  const button = h("button", { type: "button", class: "ghost" }, "Add to dashboard");
  button.addEventListener("click", async () => {
    const id = cardId();
    if (!id) return say(banner("info", "Save the card first.", ["A card goes on a dashboard once it is saved."]));
    try {
      const editable = (await dashboardsApi.list()).filter((d) => d.access !== "view");
      const target = await chooseDashboard(editable);
      if (!target) return;
      const saved = await appendCard(target, id);
      say(banner("success", `Added to “${saved.document.title}”.`, [], [h("a", { href: `/dashboards/${encodeURIComponent(saved.id)}`, class: "button" }, "Open dashboard")]));
    } catch (error) {
      say(banner("error", "Could not add the card to the dashboard.", [(error as Error).message]));
    }
  });
  return button;
}
