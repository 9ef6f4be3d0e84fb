// The frame around signed-in pages: the navigation and the user, with sign out. The sidebar collapses
// to its icons, and this browser remembers that.

import { session } from "./auth/session";
import { h } from "./dom";
import { t, type Locale, type MessageKey } from "./i18n";
import { languageSwitch } from "./i18n/switch";

export interface NavItem {
  section: string;
  label: MessageKey;
  href: string;
  admin?: boolean; // only for admins
  // Shown when the sidebar is collapsed (the label's first character without one).
  icon?: string;
}

const COLLAPSED = "bi.sidebar.collapsed";

function remembered(): boolean {
  try {
    return localStorage.getItem(COLLAPSED) === "1";
  } catch {
    return false;
  }
}

function remember(collapsed: boolean): void {
  try {
    if (collapsed) localStorage.setItem(COLLAPSED, "1");
    else localStorage.removeItem(COLLAPSED);
  } catch {
    // private mode: it stays as it is on this page
  }
}

export function shell(nav: NavItem[], active: string | undefined, content: HTMLElement, signOut: () => void, switchLanguage: (chosen: Locale) => void): HTMLElement {
  const user = session.user;
  const out = h("button", { type: "button", class: "ghost small" }, t("user.signOut"));
  out.addEventListener("click", signOut);
  const toggle = h("button", { type: "button", class: "ghost small sidebar-toggle" });
  const frame = h(
    "div",
    { class: "shell" },
    h(
      "nav",
      { class: "sidebar", "aria-label": t("nav.main") },
      h("a", { href: "/cards", class: "brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "▦"), h("span", { class: "nav-text" }, t("app.name"))),
      h("ul", {}, nav.map((item) => h("li", {}, h("a", { href: item.href, class: item.section === active ? "active" : null, "aria-current": item.section === active ? "page" : null, title: t(item.label) }, h("span", { class: "nav-icon", "aria-hidden": "true" }, item.icon ?? t(item.label).charAt(0)), h("span", { class: "nav-text" }, t(item.label)))))),
      h("div", { class: "user", role: "group", "aria-label": t("user.menu") }, h("div", { class: "user-name" }, user?.name ?? ""), h("div", { class: "user-email muted small" }, user?.email ?? ""), h("div", { class: "user-actions" }, languageSwitch(switchLanguage), out)),
      toggle,
    ),
    h("main", { class: "content" }, content),
  );
  const show = (collapsed: boolean) => {
    frame.classList.toggle("collapsed", collapsed);
    toggle.textContent = collapsed ? "»" : `« ${t("nav.collapse")}`;
    toggle.setAttribute("aria-label", collapsed ? t("nav.expand") : t("nav.collapse"));
    toggle.setAttribute("aria-expanded", String(!collapsed));
    toggle.title = collapsed ? t("nav.expand") : t("nav.collapse");
  };
  toggle.addEventListener("click", () => {
    const collapsed = !frame.classList.contains("collapsed");
    remember(collapsed);
    show(collapsed);
    window.dispatchEvent(new Event("resize")); // a dashboard's grid measures its new width
  });
  show(remembered());
  return frame;
}
