// A dashboard's version history, newest first, a page at a time: each version's time, author (you or
// someone else), title and number of cards; owners and editors restore one as a new version.
// Resolves with what a restore saved, or null.

import { dashboardsApi, type CardEntry, type Dashboard, type DashboardVersionStamp } from "../api/dashboards";
import { session } from "../auth/session";
import { h } from "../dom";
import { when } from "../format";
import { t } from "../i18n";

export interface Restored {
  dashboard: Dashboard;
  from: number;
  leftOut: CardEntry[];
}

export function openVersions(dashboard: Dashboard, canRestore: boolean): Promise<Restored | null> {
  return new Promise((resolve) => {
    let restored: Restored | null = null;
    const list = h("ul", { class: "version-list" });
    const more = h("button", { type: "button", class: "ghost small list-more", hidden: true }, t("list.more"));
    const error = h("p", { class: "form-error", role: "alert" });
    const close = h("button", { type: "button", class: "ghost" }, t("common.close"));
    const label = t("versions.heading", { title: dashboard.document.title });
    const dialog = h("dialog", { class: "dash-dialog versions-dialog", "aria-label": label }, h("h2", {}, label), list, more, error, h("div", { class: "dialog-actions" }, h("span", { class: "spacer" }), close));
    let next: string | null = null;

    const row = (v: DashboardVersionStamp) => {
      const current = v.version === dashboard.version;
      const restore = h("button", { type: "button", class: "secondary small", "aria-label": t("versions.restoreLabel", { n: v.version }) }, t("versions.restore"));
      restore.addEventListener("click", () => {
        restore.disabled = true;
        error.textContent = "";
        dashboardsApi
          .restore(dashboard.id, v.version)
          .then((saved) => {
            restored = { dashboard: saved, from: v.version, leftOut: saved.left_out ?? [] };
            dialog.close();
          })
          .catch((problem: unknown) => {
            error.textContent = (problem as Error).message;
            restore.disabled = false;
          });
      });
      const who = v.created_by === session.user?.id ? t("versions.byYou") : (v.created_by_name ?? t("cardHistory.unknownAuthor"));
      return h(
        "li",
        { class: "version-row" },
        h("div", { class: "version-what" }, h("span", { class: "strong" }, t("versions.version", { n: v.version })), h("span", { class: "muted small" }, `${when(v.created_at)} · ${who}`)),
        current ? h("span", { class: "pill owner" }, t("versions.current")) : canRestore ? restore : null,
      );
    };
    const load = async () => {
      try {
        const page = await dashboardsApi.versions(dashboard.id, next);
        list.append(...page.items.map(row));
        next = page.next;
        more.hidden = !next;
      } catch (problem) {
        error.textContent = (problem as Error).message;
      }
    };
    more.addEventListener("click", () => void load());
    close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(restored);
    });
    document.body.append(dialog);
    dialog.showModal();
    void load();
  });
}
