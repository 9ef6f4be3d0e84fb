// The UI's language: the message catalogs (ja.ts, en.ts), t(key, params), and the current locale,
// which is the signed-in user's (their choice, or their browser's until they choose) and, before
// sign-in, the browser's. Japanese comes with the page; English is fetched when it is needed.

import { ja, type MessageKey } from "./ja";

export type { MessageKey } from "./ja";
export type Locale = "ja" | "en";
export type Params = Record<string, string | number>;

export const LOCALES: Locale[] = ["ja", "en"];
const catalogs: Partial<Record<Locale, Record<MessageKey, string>>> = { ja };
const REMEMBERED = "bi.locale";

// The first of our languages the browser asks for; Japanese when it asks for neither.
export function browserLocale(): Locale {
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base === "ja" || base === "en") return base;
  }
  return "ja";
}

function remembered(): Locale | null {
  try {
    const value = localStorage.getItem(REMEMBERED);
    return value === "ja" || value === "en" ? value : null;
  } catch {
    return null;
  }
}

let current: Locale = "ja";

export function locale(): Locale {
  return current;
}

// Switches the language once its catalog is here (the caller re-renders); with `remember`, the
// sign-in page of this browser starts in it next time (a choice, or the signed-in user's).
export async function setLocale(next: Locale, remember = true): Promise<void> {
  if (next === "en") catalogs.en ??= (await import("./en")).en;
  current = next;
  document.documentElement.lang = next;
  if (!remember) return;
  try {
    localStorage.setItem(REMEMBERED, next);
  } catch {
    // private mode: the language still applies to this page
  }
}

const numbers: Partial<Record<Locale, Intl.NumberFormat>> = {};

// A number with the locale's digit grouping: 194,852,276.
export function count(n: number): string {
  return (numbers[current] ??= new Intl.NumberFormat(current)).format(n);
}

// The message `key` in the current language. {name} takes params.name (numbers grouped);
// {n|one|many} picks a form by whether n is 1 (English plurals).
export function t(key: MessageKey, params: Params = {}): string {
  return (catalogs[current] ?? ja)[key].replace(/\{(\w+)(?:\|([^|}]*)\|([^}]*))?\}/g, (whole, name: string, one?: string, many?: string) => {
    const value = params[name];
    if (value === undefined) return whole;
    if (one !== undefined) return Number(value) === 1 ? one : many ?? one;
    return typeof value === "number" ? count(value) : value;
  });
}

// The language to start in, before anyone is signed in: the one last used here, or the browser's.
export function startingLocale(): Locale {
  return remembered() ?? browserLocale();
}

// Whether the catalog has `key` (for codes that come from the server).
export function has(key: string): key is MessageKey {
  return key in ja;
}

// The message with elements in place of its {name} placeholders: t("editor.outputsHint") with
// {keys: <kbd>Ctrl</kbd>…}.
export function tWith(key: MessageKey, nodes: Record<string, Node | Node[]>, params: Params = {}): (Node | string)[] {
  return t(key, params)
    .split(/(\{\w+\})/)
    .flatMap((part): (Node | string)[] => {
      const node = /^\{(\w+)\}$/.exec(part) && nodes[part.slice(1, -1)];
      return node ? (Array.isArray(node) ? node : [node]) : part ? [part] : [];
    });
}
