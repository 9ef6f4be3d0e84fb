// "Add to dashboard" in the card editor: choose one of the dashboards I may edit; the saved card
// is appended to its layout and the dashboard saved.

import { appendCard, dashboardsApi, type Dashboard } from "../api/dashboards";
import { banner } from "../components/banner";
import { h } from "../dom";
import { choose } from "./choice-dialog";

function chooseDashboard(dashboards: Dashboard[]): Promise<Dashboard | null> {
  return choose(
    "Add to dashboard",
    dashboards.map((d) => ({ value: d, title: d.document.title, detail: `${d.document.cards.length} card${d.document.cards.length === 1 ? "" : "s"}` })),
    "You cannot edit any dashboard yet.",
    h("a", { href: "/dashboards", class: "button" }, "Create a dashboard"),
  );
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
