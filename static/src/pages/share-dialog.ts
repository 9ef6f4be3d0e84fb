// Sharing a dashboard (owners and admins): add a colleague by email as viewer or editor, see who
// has access, revoke at once. Editors see who has access, and everyone who opens it sees the datasets
// of the dashboard's cards they may not read (a version they save runs with their rights, without them).

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
  const form = h("form", { class: "share-form" }, email, permission, h("button", { type: "submit", class: "primary" }, t("share.submit")));
  const close = h("button", { type: "button", class: "ghost" }, t("common.done"));
  const unreadable = h("section", { class: "share-unreadable", hidden: true });
  const dialog = h("dialog", { class: "dash-dialog share-dialog", "aria-label": t("share.title", { title }) }, h("h2", {}, t("share.title", { title })), h("p", { class: "muted small" }, t("share.lead")), ...(canShare ? [form] : []), error, h("h3", {}, t("share.people")), list, unreadable, h("div", { class: "dialog-actions" }, close));

  const render = (shares: Share[], datasets: UnreadableDataset[]) => {
    list.replaceChildren(
      ...(shares.length
        ? shares.map((s) => {
            const revoke = h("button", { type: "button", class: "ghost small", "aria-label": t("share.revokeLabel", { email: s.email }) }, t("share.revoke"));
            revoke.addEventListener("click", () => void run(() => dashboardsApi.revoke(dashboardId, s.email)));
            return h("li", {}, h("div", { class: "share-who" }, h("span", { class: "strong" }, s.name || s.email), h("span", { class: "muted small" }, s.email)), h("span", { class: `pill ${s.permission}` }, t(ROLE[s.permission])), ...(canShare ? [revoke] : []));
          })
        : [h("li", { class: "muted small" }, t("share.onlyYou"))]),
    );
    unreadable.hidden = !datasets.length;
    unreadable.replaceChildren(...(datasets.length ? [h("h3", {}, t("share.unreadable")), h("p", { class: "muted small" }, t("share.unreadableLead")),
      h("ul", { class: "unreadable-list" }, ...datasets.map((d) => h("li", {}, t("share.unreadableItem", { name: d.name, cards: d.cards.join(", ") }))))] : []));
  };
  const refresh = async () => {
    const answer = await dashboardsApi.shares(dashboardId);
    render(answer.shares, answer.unreadable_datasets);
  };
  const run = async (change: () => Promise<unknown>) => {
    error.textContent = "";
    try {
      await change();
      await refresh();
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
