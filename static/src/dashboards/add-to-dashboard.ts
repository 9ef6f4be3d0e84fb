// "Add to dashboard" in the card editor: choose one of the dashboards I may edit (from their summaries);
// that one dashboard is read, the saved card appended to its layout and the dashboard saved.

import { appendCard, dashboardsApi, type DashboardSummary } from "../api/dashboards";
import { banner } from "../components/banner";
import { h } from "../dom";
import { choose } from "./choice-dialog";
import { t } from "../i18n";

function chooseDashboard(dashboards: DashboardSummary[]): Promise<DashboardSummary | null> {
  return choose(
    t("addToDash.title"),
    dashboards.map((d) => ({ value: d, title: d.title, detail: t("addToDash.cards", { n: d.card_count }) })),
    t("addToDash.none"),
    h("a", { href: "/dashboards", class: "button" }, t("addToDash.create")),
  );
}

// `cardId()` is the saved card's id, or null before its first save; `say` shows a banner.
export function addToDashboardButton(cardId: () => string | null, say: (message: HTMLElement) => void): HTMLElement {
  const button = h("button", { type: "button", class: "ghost" }, t("addToDash.button"));
  button.addEventListener("click", async () => {
    const id = cardId();
    if (!id) return say(banner("info", t("addToDash.saveFirst"), [t("addToDash.saveFirstBody")]));
    try {
      const editable = (await dashboardsApi.list()).filter((d) => d.access !== "view");
      const target = await chooseDashboard(editable);
      if (!target) return;
      const saved = await appendCard(await dashboardsApi.get(target.id), id);
      say(banner("success", t("addToDash.added", { title: saved.document.title }), [], [h("a", { href: `/dashboards/${encodeURIComponent(saved.id)}`, class: "button" }, t("addToDash.open"))]));
    } catch (error) {
      say(banner("error", t("addToDash.failed"), [(error as Error).message]));
    }
  });
  return button;
}
