// Bokeh figures from kernels: BokehJS loaded once from our server's versioned URLs, items embedded
// with Bokeh.embed.embed_item, live changes applied in order with Document.apply_json_patch.

import { t } from "../i18n";

interface BokehDocument {
  apply_json_patch(patch: unknown): void;
}

interface ViewManager {
  roots: { model: { document: BokehDocument | null } }[];
}

interface BokehGlobal {
  embed: { embed_item(item: unknown, target: HTMLElement): Promise<ViewManager> };
}

declare global {
  interface Window {
    Bokeh?: BokehGlobal;
  }
}

let loading: Promise<BokehGlobal> | null = null;

function script(src: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = src;
    el.onload = () => resolve();
    el.onerror = () => reject(new Error(t("bokeh.loadFailed", { src })));
    document.head.append(el);
  });
}

export function loadBokeh(): Promise<BokehGlobal> {
  loading ??= (async () => {
    const response = await fetch("/api/bokeh");
    if (!response.ok) throw new Error(t("bokeh.noScripts"));
    const { scripts } = (await response.json()) as { scripts: string[] };
    const [core, ...extensions] = scripts;
    await script(core); // the extensions register into the core's Bokeh global
    await Promise.all(extensions.map(script));
    if (!window.Bokeh) throw new Error(t("bokeh.notStarted"));
    return window.Bokeh;
  })();
  loading.catch(() => (loading = null));
  return loading;
}

// The figures shown in one output area, by root id, so that patches find their document.
export class BokehFigures {
  private documents = new Map<string, Promise<BokehDocument | null>>();

  embed(item: { root_id?: string }, target: HTMLElement): Promise<void> {
    const ready = loadBokeh()
      .then((bokeh) => bokeh.embed.embed_item(item, target))
      .then((views) => views.roots[0]?.model.document ?? null);
    if (item.root_id) this.documents.set(item.root_id, ready);
    return ready.then(() => undefined);
  }

  // Patches of one root apply strictly one after another, after its embedding.
  patch(rootId: string, patch: unknown): Promise<void> {
    const previous = this.documents.get(rootId);
    if (!previous) return Promise.resolve();
    const next = previous.then((doc) => {
      doc?.apply_json_patch(patch);
      return doc;
    });
    this.documents.set(rootId, next);
    return next.then(() => undefined);
  }

  clear(): void {
    this.documents.clear();
  }
}
