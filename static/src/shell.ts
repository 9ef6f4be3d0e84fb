// The frame around signed-in pages: the navigation and the user, with sign out.

import { session } from "./auth/session";
import { h } from "./dom";
import { t, type Locale, type MessageKey } from "./i18n";
import { languageSwitch } from "./i18n/switch";

export interface NavItem {
  section: string;
  label: MessageKey;
  href: string;
  admin?: boolean; // only for admins
}

export function shell(nav: NavItem[], active: string | undefined, content: HTMLElement, signOut: () => void, switchLanguage: (chosen: Locale) => void): HTMLElement {
  const user = session.user;
  const out = h("button", { type: "button", class: "ghost small" }, t("user.signOut"));
  out.addEventListener("click", signOut);
  return h(
    "div",
    { class: "shell" },
    h(
      "nav",
      { class: "sidebar", "aria-label": t("nav.main") },
      h("a", { href: "/cards", class: "brand" }, h("span", { class: "brand-mark" }, "▦"), t("app.name")),
      h("ul", {}, nav.map((item) => h("li", {}, h("a", { href: item.href, class: item.section === active ? "active" : null, "aria-current": item.section === active ? "page" : null }, t(item.label))))),
      h("div", { class: "user", role: "group", "aria-label": t("user.menu") }, h("div", { class: "user-name" }, user?.name ?? ""), h("div", { class: "user-email muted small" }, user?.email ?? ""), h("div", { class: "user-actions" }, languageSwitch(switchLanguage), out)),
    ),
    h("main", { class: "content" }, content),
  );
}
