// Full-screen (TV) mode for a dashboard on a wall screen: the page fills the screen (the browser's full
// screen when it allows it), without the sidebar, the parameters and the buttons, in larger type; Esc or
// "Exit full screen" ends it. `/dashboards/<id>?tv=1` opens a dashboard in it.

export class TvMode {
  on = false;

  constructor(
    private page: HTMLElement,
    private changed: () => void,
  ) {}

  enter(): void {
    if (this.on) return;
    this.on = true;
    document.documentElement.classList.add("tv");
    document.addEventListener("keydown", this.key);
    document.addEventListener("fullscreenchange", this.fullscreen);
    // Without a click (opened as ?tv=1) or where the browser refuses, the page still fills the window.
    if (document.fullscreenEnabled && navigator.userActivation?.isActive) void this.page.requestFullscreen().catch(() => undefined);
    window.dispatchEvent(new Event("resize")); // the grid measures its new width
    this.changed();
  }

  exit(): void {
    if (!this.on) return;
    this.on = false;
    document.documentElement.classList.remove("tv");
    document.removeEventListener("keydown", this.key);
    document.removeEventListener("fullscreenchange", this.fullscreen);
    if (document.fullscreenElement) void document.exitFullscreen().catch(() => undefined);
    window.dispatchEvent(new Event("resize"));
    this.changed();
  }

  private key = (event: KeyboardEvent) => {
    if (event.key === "Escape") this.exit();
  };

  // The browser left full screen (its own Esc): leave TV mode with it.
  private fullscreen = () => {
    if (!document.fullscreenElement) this.exit();
  };
}
