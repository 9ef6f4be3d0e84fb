// The frame around signed-in pages: the navigation and the user, with sign out.

import { session } from "./auth/session";
import { h } from "./dom";

export interface NavItem {
  section: string;
  label: string;
  href: string;
}

export function shell(nav: NavItem[], active: string | undefined, content: HTMLElement, signOut: () => void): HTMLElement {
  const user = session.user;
  const out = h("button", { type: "button", class: "ghost small" }, "Sign out");
  out.addEventListener("click", signOut);
  return h(
    "div",
    { class: "shell" },
    h(
      "nav",
      { class: "sidebar", "aria-label": "Main" },
      h("a", { href: "/cards", class: "brand" }, h("span", { class: "brand-mark" }, "▦"), "BI Cards"),
      h("ul", {}, nav.map((item) => h("li", {}, h("a", { href: item.href, class: item.section === active ? "active" : null, "aria-current": item.section === active ? "page" : null }, item.label)))),
      h("div", { class: "user" }, h("div", { class: "user-name" }, user?.name ?? ""), h("div", { class: "user-email muted small" }, user?.email ?? ""), out),
    ),
    h("main", { class: "content" }, content),
  );
}
