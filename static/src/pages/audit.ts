// The audit log (admins): newest first, a page at a time, filtered by event, user (email or id) and
// dates (in the browser's time zone; "until" includes its day).

import "./manage.css";
import { auditApi, type AuditEvent, type AuditFilter } from "../api/users";
import { banner } from "../components/banner";
import { h } from "../dom";
import { when } from "../format";
import { has, t } from "../i18n";
import type { Page } from "../router";

// The fields every event has; the rest are shown as its details.
const OWN = new Set(["id", "at", "event", "user_id", "user_name"]);

// The start of a local calendar day (YYYY-MM-DD), `plus` days on, as the server reads times.
function dayStart(value: string, plus = 0): string | undefined {
  const [y, m, d] = value.split("-").map(Number);
  return value ? new Date(y, m - 1, d + plus).toISOString() : undefined;
}

function eventName(event: string): (Node | string)[] {
  const key = `audit.event.${event}`;
  return has(key) ? [t(key), " ", h("code", { class: "muted small" }, event)] : [h("code", {}, event)];
}

function details(event: AuditEvent): HTMLElement {
  const fields = Object.entries(event).filter(([name, value]) => !OWN.has(name) && value !== null && value !== undefined);
  return h("dl", { class: "audit-fields" }, ...fields.flatMap(([name, value]) => [h("dt", {}, h("code", {}, name)), h("dd", {}, h("code", {}, typeof value === "string" ? value : JSON.stringify(value)))]));
}

function row(event: AuditEvent): HTMLElement {
  return h("tr", { "data-event": event.event },
    h("td", { class: "muted small nowrap" }, when(event.at)),
    h("td", {}, ...eventName(event.event)),
    h("td", { class: "small" }, event.user_name ? h("div", { class: "user-name" }, String(event.user_name)) : null, h("code", { class: "muted" }, String(event.email ?? event.user_id ?? "—"))),
    h("td", {}, details(event)));
}

export async function auditPage(): Promise<Page> {
  const event = h("input", { name: "event", placeholder: "login_failed", "aria-label": t("audit.event"), list: "audit-events", maxlength: 64 });
  const names = h("datalist", { id: "audit-events" }, ...["login_success", "login_failed", "logout", "user_created", "user_updated", "password_reset", "password_changed", "token_created", "token_revoked", "dataset_created", "dataset_renamed", "dataset_deleted", "card_executed", "dashboard_shared", "dashboard_unshared"].map((name) => h("option", { value: name })));
  const user = h("input", { name: "user", placeholder: t("audit.userPlaceholder"), "aria-label": t("audit.user"), maxlength: 254 });
  const since = h("input", { type: "date", name: "since", "aria-label": t("audit.since") });
  const until = h("input", { type: "date", name: "until", "aria-label": t("audit.until") });
  const apply = h("button", { type: "submit", class: "secondary" }, t("audit.apply"));
  const form = h("form", { class: "fields audit-filter", role: "search" },
    h("label", {}, t("audit.event"), event), names, h("label", {}, t("audit.user"), user), h("label", {}, t("audit.since"), since), h("label", {}, t("audit.until"), until), apply);
  const body = h("tbody", {});
  const messages = h("div", {});
  const none = h("p", { class: "muted list-none", hidden: true }, t("audit.none"));
  const more = h("button", { type: "button", class: "list-more", hidden: true }, t("list.more"));
  let filter: AuditFilter = {};
  let next: string | null = null;
  let generation = 0;

  const load = async (append: boolean) => {
    const mine = append ? generation : ++generation;
    try {
      const page = await auditApi.page(filter, append ? next : null);
      if (mine !== generation) return;
      messages.replaceChildren();
      if (!append) body.replaceChildren();
      body.append(...page.events.map(row));
      next = page.next;
      more.hidden = !next;
      none.hidden = body.childElementCount > 0;
    } catch (error) {
      messages.replaceChildren(banner("error", t("audit.failed"), [(error as Error).message]));
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    filter = { event: event.value.trim() || undefined, user: user.value.trim() || undefined, since: dayStart(since.value), until: dayStart(until.value, 1) };
    void load(false);
  });
  more.addEventListener("click", () => void load(true));
  await load(false);
  return {
    element: h("div", { class: "page" }, h("header", { class: "page-head" }, h("h1", {}, t("audit.title"))), h("p", { class: "muted small" }, t("audit.lead")), form, messages,
      h("table", { class: "list audit-list" }, h("thead", {}, h("tr", {}, ...(["audit.col.at", "audit.col.event", "audit.col.user", "audit.col.details"] as const).map((key) => h("th", { scope: "col" }, t(key))))), body), none, more),
  };
}
