// Users (admins): the list a page at a time, newest first; add one; change a role; deactivate and
// activate; reset a password to a one-time password shown once. Admins cannot demote or deactivate
// themselves (the server refuses it too).

import "./manage.css";
import { ApiError } from "../api/errors";
import { usersApi, type Member } from "../api/users";
import { session } from "../auth/session";
import { banner } from "../components/banner";
import { closeButton, confirmDialog, openDialog, secretBox } from "../components/dialog";
import { h } from "../dom";
import { when } from "../format";
import { t, tWith } from "../i18n";
import type { Page } from "../router";

const ROLES = ["member", "admin"] as const;

function roleSelect(member: Member, changed: (role: Member["role"]) => void): HTMLSelectElement {
  const select = h("select", { name: "role", "aria-label": t("users.roleOf", { name: member.name }), disabled: member.id === session.user?.id },
    ...ROLES.map((role) => h("option", { value: role, selected: role === member.role }, t(`users.role.${role}`))));
  select.addEventListener("change", () => changed(select.value as Member["role"]));
  return select;
}

// A random initial password the admin hands over (the user changes it in their account).
function suggestedPassword(): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => alphabet[b % alphabet.length]).join("");
}

export async function usersPage(): Promise<Page> {
  const messages = h("div", { class: "page-messages" });
  const body = h("tbody", {});
  const more = h("button", { type: "button", class: "list-more", hidden: true }, t("list.more"));
  let next: string | null = null;
  const say = (message: HTMLElement | null) => messages.replaceChildren(...(message ? [message] : []));
  const failed = (error: unknown) => say(banner("error", t("users.failed"), [(error as Error).message]));

  const row = (member: Member): HTMLTableRowElement => {
    const tr = h("tr", { "data-email": member.email });
    const render = (m: Member) => {
      const self = m.id === session.user?.id;
      const toggle = h("button", { type: "button", class: "ghost small", disabled: self }, m.active ? t("users.deactivate") : t("users.activate"));
      toggle.addEventListener("click", () => void setActive(m, !m.active));
      const reset = h("button", { type: "button", class: "ghost small" }, t("users.resetPassword"));
      reset.addEventListener("click", () => void resetPassword(m));
      tr.classList.toggle("inactive", !m.active);
      tr.replaceChildren(
        h("td", {}, h("div", { class: "strong user-name" }, m.name), h("div", { class: "muted small user-email" }, m.email)),
        h("td", {}, roleSelect(m, (role) => void change(m, { role }))),
        h("td", {}, h("span", { class: `pill ${m.active ? "on" : "off"}` }, m.active ? t("users.active") : t("users.inactive")),
          m.password_change_required ? h("div", { class: "muted small" }, t("users.mustChange")) : null),
        h("td", { class: "muted small" }, when(m.created_at)),
        h("td", { class: "actions" }, toggle, reset),
      );
    };
    const change = async (m: Member, fields: Partial<Member>) => {
      try {
        const updated = await usersApi.update(m.id, fields);
        render(updated);
        say(banner("success", t("users.changed", { name: updated.name })));
      } catch (error) {
        render(m);
        failed(error);
      }
    };
    const setActive = async (m: Member, active: boolean) => {
      if (!active && !(await confirmDialog(t("users.deactivateTitle"), [h("p", {}, ...tWith("users.deactivateBody", { email: h("span", { class: "user-email" }, m.email) }, { name: m.name }))], t("users.deactivate")))) return;
      await change(m, { active });
    };
    const resetPassword = async (m: Member) => {
      if (!(await confirmDialog(t("users.resetTitle"), [t("users.resetBody", { name: m.name })], t("users.resetPassword")))) return;
      try {
        const { password } = await usersApi.resetPassword(m.id);
        openDialog(t("users.resetDone", { name: m.name }), [t("users.resetDoneBody"), secretBox(password, t("users.oneTimePassword"))], [closeButton(t("common.close"))]);
        render({ ...m, password_change_required: true });
      } catch (error) {
        failed(error);
      }
    };
    render(member);
    return tr;
  };

  const load = async (append: boolean) => {
    const page = await usersApi.page(append ? next : null);
    if (!append) body.replaceChildren();
    body.append(...page.items.map(row));
    next = page.next;
    more.hidden = !next;
  };
  more.addEventListener("click", () => void load(true).catch(failed));

  const add = h("button", { type: "button", class: "primary" }, t("users.add"));
  add.addEventListener("click", () => {
    const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
    const email = h("input", { name: "email", type: "email", required: true, maxlength: 254, autocomplete: "off" });
    const role = h("select", { name: "role" }, ...ROLES.map((r) => h("option", { value: r }, t(`users.role.${r}`))));
    const password = h("input", { name: "password", required: true, minlength: 8, maxlength: 1024, autocomplete: "new-password", value: suggestedPassword() });
    const error = h("p", { class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", class: "primary", form: "user-add" }, t("users.addSubmit"));
    const form = h("form", { class: "stack", id: "user-add" },
      h("label", {}, t("users.name"), name), h("label", {}, t("users.email"), email), h("label", {}, t("users.role"), role),
      h("label", {}, t("users.initialPassword"), password), h("p", { class: "muted small" }, t("users.initialPasswordHint")), error);
    const dialog = openDialog(t("users.addTitle"), [form], [closeButton(), submit]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        const created = await usersApi.create({ name: name.value.trim(), email: email.value.trim(), role: role.value as Member["role"], password: password.value });
        dialog.close();
        body.prepend(row(created));
        say(banner("success", t("users.added", { name: created.name })));
      } catch (e) {
        error.textContent = e instanceof ApiError ? e.message : String(e);
      } finally {
        submit.disabled = false;
      }
    });
    name.focus();
  });

  await load(false);
  return {
    element: h(
      "div",
      { class: "page" },
      h("header", { class: "page-head" }, h("h1", {}, t("users.title")), h("span", { class: "spacer" }), add),
      messages,
      h("table", { class: "list users-list" },
        h("thead", {}, h("tr", {}, ...(["users.col.user", "users.col.role", "users.col.state", "users.col.created", "users.col.actions"] as const).map((key) => h("th", { scope: "col" }, t(key))))),
        body),
      more,
    ),
  };
}
