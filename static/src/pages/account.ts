// My account: change my password (every other sign-in of mine ends; this tab gets new tokens), and my
// personal access tokens for Jupyter clients: list, create (the token shown this once), revoke.

import "./manage.css";
import { meApi, type PersonalToken } from "../api/users";
import { session } from "../auth/session";
import { banner } from "../components/banner";
import { closeButton, confirmDialog, openDialog, secretBox } from "../components/dialog";
import { h } from "../dom";
import { when } from "../format";
import { t, tWith } from "../i18n";
import type { Page } from "../router";

const LIFETIMES = [30, 90, 365];
const MIN_PASSWORD = 10;

function passwordForm(): HTMLElement {
  const current = h("input", { type: "password", name: "current_password", required: true, autocomplete: "current-password" });
  const next = h("input", { type: "password", name: "new_password", required: true, minlength: MIN_PASSWORD, autocomplete: "new-password", "aria-describedby": "password-hint" });
  const again = h("input", { type: "password", name: "new_password_again", required: true, autocomplete: "new-password" });
  const note = h("div", { class: "form-note" });
  const submit = h("button", { type: "submit", class: "primary" }, t("account.changePassword"));
  const form = h("form", { class: "stack narrow", "aria-label": t("account.password") },
    h("label", {}, t("account.currentPassword"), current),
    h("label", {}, t("account.newPassword"), next),
    h("p", { class: "muted small hint", id: "password-hint" }, t("account.passwordHint", { n: MIN_PASSWORD })),
    h("label", {}, t("account.newPasswordAgain"), again),
    note, h("div", {}, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (next.value !== again.value) {
      note.replaceChildren(banner("error", t("account.passwordsDiffer")));
      return;
    }
    submit.disabled = true;
    try {
      const signedIn = await meApi.changePassword(current.value, next.value);
      session.signIn(signedIn.access_token, signedIn.user, signedIn.expires_in);
      form.reset();
      note.replaceChildren(banner("success", t("account.passwordChanged"), [t("account.passwordChangedBody")]));
    } catch (error) {
      note.replaceChildren(banner("error", t("account.passwordNotChanged"), [(error as Error).message]));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function tokensSection(): Promise<HTMLElement> {
  const list = h("tbody", {});
  const note = h("div", { class: "form-note" });
  const empty = h("p", { class: "muted" }, t("account.noTokens"));
  const table = h("table", { class: "list tokens-list" },
    h("thead", {}, h("tr", {}, ...(["account.col.token", "account.col.created", "account.col.expires", "account.col.actions"] as const).map((key) => h("th", { scope: "col" }, t(key))))), list);
  const show = (tokens: PersonalToken[]) => {
    list.replaceChildren(...tokens.map(row));
    empty.hidden = tokens.length > 0;
    table.hidden = tokens.length === 0;
  };
  const reload = async () => show(await meApi.tokens());
  const row = (token: PersonalToken) => {
    const revoke = h("button", { type: "button", class: "ghost small", "aria-label": t("account.revokeLabel", { name: token.name }) }, t("account.revoke"));
    revoke.addEventListener("click", async () => {
      if (!(await confirmDialog(t("account.revokeTitle"), [t("account.revokeBody", { name: token.name })], t("account.revoke")))) return;
      try {
        await meApi.revokeToken(token.id);
        note.replaceChildren(banner("success", t("account.revoked", { name: token.name })));
        await reload();
      } catch (error) {
        note.replaceChildren(banner("error", (error as Error).message));
      }
    });
    return h("tr", { "data-token": token.name }, h("td", { class: "strong" }, token.name), h("td", { class: "muted small" }, when(token.created_at)), h("td", { class: "muted small" }, when(token.expires_at)), h("td", { class: "actions" }, revoke));
  };
  const name = h("input", { name: "token_name", required: true, maxlength: 100, placeholder: t("account.tokenNamePlaceholder"), "aria-label": t("account.tokenName") });
  const days = h("select", { name: "expires_in_days", "aria-label": t("account.tokenLifetime") }, ...LIFETIMES.map((n) => h("option", { value: String(n), selected: n === 90 ? "selected" : null }, t("account.days", { n }))));
  const create = h("button", { type: "submit", class: "secondary" }, t("account.createToken"));
  const form = h("form", { class: "fields", "aria-label": t("account.createToken") }, h("label", {}, t("account.tokenName"), name), h("label", {}, t("account.tokenLifetime"), days), create);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    create.disabled = true;
    try {
      const made = await meApi.createToken(name.value.trim(), Number(days.value));
      form.reset();
      note.replaceChildren();
      openDialog(t("account.tokenCreated", { name: made.name }), [t("account.tokenCreatedBody"), secretBox(made.token, t("account.tokenValue"))], [closeButton(t("common.close"))]);
      await reload();
    } catch (error) {
      note.replaceChildren(banner("error", (error as Error).message));
    } finally {
      create.disabled = false;
    }
  });
  await reload();
  return h("section", { class: "account-section", "aria-label": t("account.tokens") }, h("h2", {}, t("account.tokens")), h("p", { class: "muted small" }, t("account.tokensLead")), form, note, table, empty);
}

export async function accountPage(): Promise<Page> {
  const user = session.user;
  return {
    element: h(
      "div",
      { class: "page" },
      h("header", { class: "page-head" }, h("h1", {}, t("account.title"))),
      h("p", { class: "muted" }, ...tWith("account.signedInAs", { email: h("span", { class: "user-email" }, user?.email ?? "") }, { name: user?.name ?? "" })),
      h("section", { class: "account-section", "aria-label": t("account.password") }, h("h2", {}, t("account.password")), passwordForm()),
      await tokensSection(),
    ),
  };
}
