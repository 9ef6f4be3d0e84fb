// Signing in: the form (used by the page and the dialog), the page, and the dialog that appears when
// a token runs out, so the user signs in again without losing what is open.

import { onUnauthorized } from "../api/client";
import { ApiError, parseJSON } from "../api/errors";
import { h } from "../dom";
import type { Page } from "../router";
import { session, type User } from "./session";
import { t } from "../i18n";
import { applyUserLocale, chooseBeforeSignIn, languageSwitch } from "../i18n/switch";

interface LoginReply {
  access_token: string;
  expires_in: number;
  user: User;
}

async function login(email: string, password: string): Promise<void> {
  let response: globalThis.Response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email, password }),
    });
  } catch {
    throw ApiError.from(0, null);
  }
  const body = parseJSON(await response.text());
  if (!response.ok) throw ApiError.from(response.status, body);
  const reply = body as LoginReply;
  session.signIn(reply.access_token, reply.user, reply.expires_in);
  await applyUserLocale(reply.user);
}

function signInForm(onSignedIn: () => void, email = ""): HTMLFormElement {
  const emailInput = h("input", { type: "email", name: "email", required: true, autocomplete: "username", value: email });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary wide" }, t("signin.submit"));
  const form = h(
    "form",
    { class: "stack", novalidate: false },
    h("label", {}, t("signin.email"), emailInput),
    h("label", {}, t("signin.password"), password),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    submit.textContent = t("signin.submitting");
    error.hidden = true;
    try {
      await login(emailInput.value.trim(), password.value);
      onSignedIn();
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401 ? t("signin.wrong") : (e as Error).message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = t("signin.submit");
    }
  });
  setTimeout(() => (email ? password : emailInput).focus()); // once the form is in the page
  return form;
}

// `relabel` re-renders the page in another language.
export function signInPage(navigate: (to: string) => void, next: string, relabel: () => void): Page {
  const element = h(
    "main",
    { class: "signin" },
    h(
      "section",
      { class: "signin-card" },
      h("div", { class: "brand big" }, h("span", { class: "brand-mark" }, "▦"), t("app.name")),
      h("h1", {}, t("signin.title")),
      h("p", { class: "muted" }, t("signin.lead")),
      signInForm(() => navigate(next.startsWith("/") ? next : "/cards")),
      languageSwitch((chosen) => void chooseBeforeSignIn(chosen).then(relabel)),
    ),
  );
  return { element, title: t("signin.title") };
}

// One dialog at a time; every request that got a 401 meanwhile waits for the same sign-in.
let pending: Promise<void> | null = null;

function askToSignInAgain(): Promise<void> {
  pending ??= new Promise<void>((resolve) => {
    const dialog = h("dialog", { class: "reauth", "aria-labelledby": "reauth-title" });
    dialog.append(
      h("h2", { id: "reauth-title" }, t("signin.expiredTitle")),
      h("p", { class: "muted" }, t("signin.expiredLead")),
      signInForm(() => {
        dialog.close();
        dialog.remove();
        pending = null;
        resolve();
      }, session.user?.email ?? ""),
    );
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
  });
  return pending;
}

onUnauthorized(askToSignInAgain);
