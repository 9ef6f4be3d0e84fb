// The share dialog: colleagues by email as viewers or editors, and revoking.

import { ApiError } from "../api/errors";
import { dashboardsApi, type Share } from "../api/dashboards";
import { h } from "../dom";

export function openShareDialog(dashboardId: string, title: string): void {
  const email = h("input", { type: "email", required: true, placeholder: "colleague@example.com", "aria-label": "Email" });
  const permission = h("select", { "aria-label": "Permission" }, h("option", { value: "view" }, "Can view"), h("option", { value: "edit" }, "Can edit"));
  const error = h("p", { class: "form-error", role: "alert" });
  const list = h("ul", { class: "share-list" });
  const add = h("button", { type: "submit", class: "primary" }, "Share");
  const form = h("form", { class: "share-form" }, email, permission, add);
  const close = h("button", { type: "button", class: "ghost" }, "Done");
  const dialog = h("dialog", { class: "share", "aria-label": "Share" },
    h("h2", {}, `Share “${title}”`),
    h("p", { class: "muted small" }, "Viewers see the dashboard and run its cards with their own parameters; editors also change its cards and layout. The datasets stay private."),
    form, error, h("h3", { class: "small muted" }, "People with access"), list, h("div", { class: "dialog-actions" }, close));

  const fail = (e: unknown) => (error.textContent = e instanceof ApiError || e instanceof Error ? e.message : String(e));
  const show = (shares: Share[]) =>
    list.replaceChildren(
      ...(shares.length
        ? shares.map((share) => {
            const revoke = h("button", { type: "button", class: "ghost small" }, "Remove");
            revoke.addEventListener("click", async () => {
              try {
                await dashboardsApi.revoke(dashboardId, share.email);
                show(await dashboardsApi.shares(dashboardId));
              } catch (e) {
                fail(e);
              }
            });
            return h("li", {}, h("span", { class: "share-who" }, h("strong", {}, share.name), " ", h("span", { class: "muted small" }, share.email)),
              h("span", { class: "muted small" }, share.permission === "edit" ? "Can edit" : "Can view"), revoke);
          })
        : [h("li", { class: "muted small" }, "Only you so far.")]),
    );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    add.disabled = true;
    try {
      await dashboardsApi.share(dashboardId, email.value.trim(), permission.value as Share["permission"]);
      email.value = "";
      show(await dashboardsApi.shares(dashboardId));
    } catch (e) {
      fail(e);
    } finally {
      add.disabled = false;
    }
  });
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  void dashboardsApi.shares(dashboardId).then(show, fail);
}
