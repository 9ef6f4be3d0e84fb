// Sharing a dashboard (owners and admins): add a colleague by email as viewer or editor, see who
// has access (a page at a time, the newest grant first), revoke at once. Editors see who has access, and
// everyone who opens it sees the datasets of the dashboard's cards they may not read (a version they save runs
// with their rights, without them).

import { dashboardsApi, type Share, type UnreadableDataset } from "../api/dashboards";
import { h } from "../dom";
import { ApiError } from "../api/errors";
import { locale, t, type MessageKey } from "../i18n";

const ROLE: Record<string, MessageKey> = { view: "share.view", edit: "share.edit" };

// Why a share failed: the two mistakes a person makes here, in their words.
function shareProblem(error: unknown): string {
  if (error instanceof ApiError && error.details.pointer === "/email" && locale() === "ja") {
    if (error.code === "unprocessable") return t("share.noUser");
    if (error.code === "bad_request") return t("share.owner");
  }
  return (error as Error).message;
}

export function openShareDialog(dashboardId: string, title: string, canShare: boolean): void {
  const email = h("input", { type: "email", name: "email", placeholder: t("share.placeholder"), required: true, "aria-label": t("share.email") });
  const permission = h("select", { name: "permission", "aria-label": t("share.permission") }, h("option", { value: "view" }, t(ROLE.view)), h("option", { value: "edit" }, t(ROLE.edit)));
  const error = h("p", { class: "form-error", role: "alert" });
  const list = h("ul", { class: "share-list" });
  const more = h("button", { type: "button", class: "ghost small list-more", hidden: true }, t("list.more"));
  let next: string | null = null;
  const form = h("form", { class: "share-form" }, email, permission, h("button", { type: "submit", class: "primary" }, t("share.submit")));
  const close = h("button", { type: "button", class: "ghost" }, t("common.done"));
  const unreadable = h("section", { class: "share-unreadable", hidden: true });
  const dialog = h("dialog", { class: "dash-dialog share-dialog", "aria-label": t("share.title", { title }) }, h("h2", {}, t("share.title", { title })), h("p", { class: "muted small" }, t("share.lead")), ...(canShare ? [form] : []), error, h("h3", {}, t("share.people")), list, more, unreadable, h("div", { class: "dialog-actions" }, close));

  const person = (s: Share) => {
    const revoke = h("button", { type: "button", class: "ghost small", "aria-label": t("share.revokeLabel", { email: s.email }) }, t("share.revoke"));
    revoke.addEventListener("click", () => void run(() => dashboardsApi.revoke(dashboardId, s.email)));
    return h("li", {}, h("div", { class: "share-who" }, h("span", { class: "strong" }, s.name || s.email), h("span", { class: "muted small" }, s.email)), h("span", { class: `pill ${s.permission}` }, t(ROLE[s.permission])), ...(canShare ? [revoke] : []));
  };
  const showUnreadable = (datasets: UnreadableDataset[]) => {
    unreadable.hidden = !datasets.length;
    unreadable.replaceChildren(...(datasets.length ? [h("h3", {}, t("share.unreadable")), h("p", { class: "muted small" }, t("share.unreadableLead")),
      h("ul", { class: "unreadable-list" }, ...datasets.map((d) => h("li", {}, t("share.unreadableItem", { name: d.name, cards: d.cards.join(", ") }))))] : []));
  };
  // The first page again (after a change), or the next one appended.
  const show = async (append: boolean) => {
    if (append) {
      const page = await dashboardsApi.shares(dashboardId, next);
      list.append(...page.items.map(person));
      next = page.next;
    } else {
      const first = await dashboardsApi.sharing(dashboardId);
      list.replaceChildren(...(first.shares.length ? first.shares.map(person) : [h("li", { class: "muted small" }, t("share.onlyYou"))]));
      showUnreadable(first.unreadable_datasets);
      next = first.next;
    }
    more.hidden = !next;
  };
  const refresh = () => show(false);
  more.addEventListener("click", () => void run(() => show(true), false));
  const run = async (change: () => Promise<unknown>, reload = true) => {
    error.textContent = "";
    try {
      await change();
      if (reload) await refresh();
    } catch (e) {
      error.textContent = shareProblem(e);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void run(async () => {
      await dashboardsApi.share(dashboardId, email.value.trim(), permission.value as "view" | "edit");
      email.value = "";
    });
  });
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  void run(async () => undefined);
}
