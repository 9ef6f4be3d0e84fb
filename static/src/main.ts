// Boot: the route table, the shell, and sign-in guarding. Each page is its own chunk, loaded when it is
// first shown: the sign-in and dashboard pages never load the code editor.

import "./styles.css";
import { endSignIn } from "./api/client";
import { ApiError } from "./api/errors";
import { session } from "./auth/session";
import { signInPage } from "./auth/signin";
import { banner } from "./components/banner";
import { h } from "./dom";
import { Router, type Page, type PageFactory, type Route } from "./router";
import { shell, type NavItem } from "./shell";
import { setLocale, startingLocale, t, type Locale } from "./i18n";
import { changeLanguage } from "./i18n/switch";

const root = document.getElementById("app")!;
const go = (to: string) => router.navigate(to);

const NAV: NavItem[] = [
  { section: "cards", label: "nav.cards", href: "/cards", icon: "▤" },
  { section: "datasets", label: "nav.datasets", href: "/datasets", icon: "▥" },
  { section: "dashboards", label: "nav.dashboards", href: "/dashboards", icon: "⊞" },
  { section: "account", label: "nav.account", href: "/account", icon: "◉" },
  { section: "users", label: "nav.users", href: "/users", admin: true, icon: "☷" },
  { section: "audit", label: "nav.audit", href: "/audit", admin: true, icon: "☰" },
];
// The entries of the signed-in user (admins see the admin pages).
const navigation = () => NAV.filter((item) => !item.admin || session.user?.role === "admin");

// A page that could not load shows why, inside the shell.
function safely(factory: PageFactory): PageFactory {
  return async (params, query) => {
    try {
      return await factory(params, query);
    } catch (error) {
      const missing = error instanceof ApiError && error.status === 404;
      return { element: h("div", { class: "page" }, banner("error", missing ? t("page.notFound") : t("page.loadFailed"), [(error as Error).message])) };
    }
  };
}

const ROUTES: Route[] = [
  { path: "/signin", public: true, page: (_, query) => signInPage(go, query.get("next") ?? "/cards", () => void router.show()) },
  { path: "/cards", section: "cards", page: safely(async () => (await import("./pages/cards")).cardsPage()) },
  { path: "/cards/new", section: "cards", page: safely(async (_, query) => (await import("./pages/card-editor")).cardEditorPage(null, (p) => router.rename(p), () => void router.show(), query.getAll("dataset"))) },
  { path: "/cards/:id", section: "cards", page: safely(async ({ id }) => (await import("./pages/card-editor")).cardEditorPage(id, (p) => router.rename(p), () => void router.show())) },
  { path: "/datasets", section: "datasets", page: safely(async () => (await import("./pages/datasets")).datasetsPage(go)) },
  { path: "/datasets/:id", section: "datasets", page: safely(async ({ id }) => (await import("./pages/dataset")).datasetPage(id, go)) },
  { path: "/dashboards", section: "dashboards", page: safely(async () => (await import("./pages/dashboards")).dashboardsPage(go)) },
  { path: "/dashboards/:id", section: "dashboards", page: safely(async ({ id }, query) => (await import("./pages/dashboard")).dashboardPage(id, go, query.get("tv") === "1")) },
  { path: "/account", section: "account", page: safely(async () => (await import("./pages/account")).accountPage()) },
  { path: "/users", section: "users", page: safely(async () => (await import("./pages/users")).usersPage()) },
  { path: "/audit", section: "audit", page: safely(async () => (await import("./pages/audit")).auditPage()) },
];

// Sign out: the sign-in ends on the server too (not only in this tab), then the sign-in page.
function signOut(): void {
  void endSignIn().finally(() => {
    session.signOut();
    go("/signin");
  });
}

// Another language: the page is made again in it (an open card editor keeps its draft).
async function switchLanguage(chosen: Locale): Promise<void> {
  await changeLanguage(chosen).catch(() => undefined); // shown anyway, even if the server did not keep it
  await router.show();
}

function render(page: Page, route: Route): void {
  root.replaceChildren(route.public ? page.element : shell(navigation(), route.section, page.element, signOut, switchLanguage));
  document.title = `${page.title ?? page.element.querySelector("h1")?.textContent ?? t("signin.title")} · ${t("app.name")}`;
}

const router = new Router(ROUTES, render, (route, target) => {
  if (!route.public && !session.user) return `/signin?next=${encodeURIComponent(target)}`;
  if (route.public && session.user && !session.expired) return "/cards";
  return null;
});
// The page's language first: the signed-in user's, or this browser's.
void setLocale(session.user?.locale ?? startingLocale(), false).then(() => router.show());
