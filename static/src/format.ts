// Numbers, sizes, dates and durations as people read them, in the UI's language. The server sends
// UTC; dates show in the browser's time zone.

import { count, locale, t } from "./i18n";

export { count };

export function bytes(n: number): string {
  if (n < 1024) return `${count(n)} B`;
  const units = ["KB", "MB", "GB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toLocaleString(locale(), { minimumFractionDigits: value < 10 ? 1 : 0, maximumFractionDigits: value < 10 ? 1 : 0 })} ${units[unit]}`;
}

// A running clock: 0.4秒 / 0.4 s.
export function elapsed(ms: number): string {
  const s = (ms / 1000).toLocaleString(locale(), { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  return locale() === "ja" ? `${s}秒` : `${s} s`;
}

// How long something took: 0.12秒, 1.5秒 / 120 ms, 1.5 s.
export function seconds(ms: number): string {
  if (ms >= 1000) return elapsed(ms);
  return locale() === "ja" ? `${(ms / 1000).toLocaleString("ja", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}秒` : `${Math.round(ms)} ms`;
}

function date(iso: string | number): Date | null {
  const value = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return Number.isNaN(value.getTime()) ? null : value;
}

// 2026年12月6日 14:05 / Dec 6, 2026, 2:05 PM
export function when(iso: string | number): string {
  const value = date(iso);
  if (!value) return "";
  return locale() === "ja"
    ? value.toLocaleString("ja", { year: "numeric", month: "long", day: "numeric", hour: "2-digit", minute: "2-digit" })
    : value.toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
}

// 14:05 (with seconds: 14:05:09)
export function clock(value: Date, withSeconds = false): string {
  return value.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", second: withSeconds ? "2-digit" : undefined, hour12: locale() === "ja" ? false : undefined });
}

// たった今, 3分前, 2時間前, 昨日 14:05, then the date: for "updated" times.
export function ago(iso: string | number, now = new Date()): string {
  const value = date(iso);
  if (!value) return "";
  const minutes = Math.floor((now.getTime() - value.getTime()) / 60_000);
  if (minutes < 1) return t("time.justNow");
  if (minutes < 60) return t("time.minutesAgo", { n: minutes });
  const day = (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(now) - day(value)) / 86_400_000);
  if (days === 0) return t("time.hoursAgo", { n: Math.floor(minutes / 60) });
  if (days === 1) return t("time.yesterday", { time: clock(value) });
  return when(value.getTime() / 1000);
}

const relatives: Partial<Record<string, Intl.RelativeTimeFormat>> = {};

// How long ago, in the locale's words (Intl.RelativeTimeFormat): 3分前, 2時間前, 昨日 / 3 minutes ago,
// yesterday; null under a minute (the caller says "just now" in its own words). Japanese without the
// space Intl puts between the number and the unit (3分前, as the glossary writes it).
export function relative(iso: string, now = new Date()): string | null {
  const value = date(iso);
  if (!value) return null;
  const seconds = Math.max(0, (now.getTime() - value.getTime()) / 1000);
  if (seconds < 60) return null;
  const format = (relatives[locale()] ??= new Intl.RelativeTimeFormat(locale(), { numeric: "auto" }));
  const [amount, unit]: [number, Intl.RelativeTimeFormatUnit] =
    seconds < 3600 ? [Math.floor(seconds / 60), "minute"] : seconds < 86_400 ? [Math.floor(seconds / 3600), "hour"] : [Math.floor(seconds / 86_400), "day"];
  const text = format.format(-amount, unit);
  return locale() === "ja" ? text.replace(/(\d) (?=\S)/g, "$1") : text;
}
