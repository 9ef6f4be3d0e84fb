// Choosing the UI language: a switch for the sign-in page and the user menu. Signed in, the choice
// is the user's (PATCH /api/me); before sign-in it is this browser's until the user signs in.

import { request } from "../api/client";
import { session, type User } from "../auth/session";
import { h } from "../dom";
import { LOCALES, locale, setLocale, t, type Locale } from "./index";

const PENDING = "bi.locale.chosen";

export function languageSwitch(onChange: (chosen: Locale) => void): HTMLElement {
  const select = h("select", { name: "locale", "aria-label": t("user.language") },
    LOCALES.map((l) => h("option", { value: l, selected: l === locale(), lang: l }, t(`lang.${l}`))));
  select.addEventListener("change", () => onChange(select.value as Locale));
  return h("label", { class: "language-switch small" }, h("span", { class: "visually-hidden" }, t("user.language")), select);
}

// Before sign-in: show the page in `chosen` and keep it for the account once signed in.
export async function chooseBeforeSignIn(chosen: Locale): Promise<void> {
  await setLocale(chosen);
  try {
    sessionStorage.setItem(PENDING, chosen);
  } catch {
    // not kept: the account's language applies after sign-in
  }
}

async function saveLocale(chosen: Locale): Promise<void> {
  const { data } = await request<User>("PATCH", "/api/me", { json: { locale: chosen } });
  session.update(data);
}

// After sign-in: the account's language, unless the user picked one on the sign-in page.
export async function applyUserLocale(user: User): Promise<void> {
  const pending = sessionStorage.getItem(PENDING) as Locale | null;
  sessionStorage.removeItem(PENDING);
  if (pending && pending !== user.locale) {
    await setLocale(pending);
    await saveLocale(pending).catch(() => undefined); // the page still shows the chosen language
    return;
  }
  await setLocale(user.locale ?? locale());
}

// Signed in: switch, and remember it for the account.
export async function changeLanguage(chosen: Locale): Promise<void> {
  await setLocale(chosen);
  await saveLocale(chosen);
}
