// A history router: each route is a path pattern (":name" matches one segment) and a page.

export interface Page {
  element: HTMLElement;
  // The window title (the page's first heading otherwise).
  title?: string;
  // Called when the user navigates away; stops timers and closes sockets.
  leave?(): void;
}

export type PageFactory = (params: Record<string, string>, query: URLSearchParams) => Page | Promise<Page>;

export interface Route {
  path: string;
  page: PageFactory;
  // Pages anyone may open (sign in); every other page needs a signed-in user.
  public?: boolean;
  // The navigation entry this route highlights.
  section?: string;
}

interface Match {
  route: Route;
  params: Record<string, string>;
}

export class Router {
  private current: Page | null = null;
  private rendering = 0;

  constructor(
    private routes: Route[],
    private render: (page: Page, route: Route) => void,
    private guard: (route: Route, target: string) => string | null,
  ) {
    window.addEventListener("popstate", () => void this.show());
    document.addEventListener("click", (event) => this.follow(event));
  }

  navigate(target: string, { replace = false } = {}): void {
    if (replace) history.replaceState(null, "", target);
    else history.pushState(null, "", target);
    void this.show();
  }

  // Change the address without rendering again (a new card got its id).
  rename(target: string): void {
    history.replaceState(null, "", target);
  }

  async show(): Promise<void> {
    const turn = ++this.rendering;
    const match = this.match(location.pathname);
    if (!match) return this.navigate("/cards", { replace: true });
    const redirect = this.guard(match.route, location.pathname + location.search);
    if (redirect) return this.navigate(redirect, { replace: true });
    this.current?.leave?.();
    this.current = null;
    const page = await match.route.page(match.params, new URLSearchParams(location.search));
    if (turn !== this.rendering) return page.leave?.();
    this.current = page;
    this.render(page, match.route);
  }

  private match(path: string): Match | null {
    const parts = path.split("/").filter(Boolean);
    for (const route of this.routes) {
      const pattern = route.path.split("/").filter(Boolean);
      if (pattern.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const matches = pattern.every((segment, i) => {
        if (!segment.startsWith(":")) return segment === parts[i];
        params[segment.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      });
      if (matches) return { route, params };
    }
    return null;
  }

  // Same-origin links navigate without a reload.
  private follow(event: MouseEvent): void {
    const link = (event.target as Element).closest?.("a");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    if (link.target || link.origin !== location.origin || link.pathname.startsWith("/api/")) return;
    event.preventDefault();
    this.navigate(link.pathname + link.search);
  }
}
