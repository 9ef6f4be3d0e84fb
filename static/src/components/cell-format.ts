// How a table cell's value reads, per column (dataset previews and DataFrame outputs). The rule:
// - integers get the locale's digit grouping (194,852,276), except in columns whose name says they
//   hold identifiers, codes or years (…id, …code, …no, …number, year, zip; ID, コード, 番号, 年, 年度,
//   郵便番号), which keep their digits as they are (2026, not 2,026);
// - other numbers are grouped the same way with at most 6 decimals, as pandas shows them;
// - dates and times (datetime, timestamp and date columns) read as the locale writes them
//   (2026/12/06 14:05 in Japanese, Dec 6, 2026, 02:05 PM in English) at the wall time the data holds,
//   never shifted to the browser's time zone; midnight shows the date alone;
// - anything else is shown as it is.

import type { Column } from "./table";
import { locale } from "../i18n";

const PLAIN_DIGITS = /(^|[\s_\-.])(id|code|cd|no|number|num|year|yr|zip)$|^(id|code|year|zip)$|(ID|コード|番号|年|年度|郵便番号)$/i;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/;

export type CellFormat = (value: unknown) => string;

export function cellFormat(column: Column): CellFormat {
  const dtype = column.dtype ?? "";
  if (/^(datetime|timestamp|date)/.test(dtype)) return dateTime;
  if (PLAIN_DIGITS.test(column.name.trim())) return asText;
  if (/^u?int/.test(dtype)) return grouped(0);
  return grouped(6);
}

export function asText(value: unknown): string {
  return value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
}

function grouped(decimals: number): CellFormat {
  const format = new Intl.NumberFormat(locale(), { maximumFractionDigits: decimals });
  return (value) => (typeof value === "number" && Number.isFinite(value) ? format.format(value) : asText(value));
}

function dateTime(value: unknown): string {
  const parts = typeof value === "string" ? DATETIME.exec(value) : null;
  if (!parts) return asText(value);
  const [year, month, day, hour, minute, second] = parts.slice(1).map((part) => Number(part ?? 0));
  const wall = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  const midnight = hour === 0 && minute === 0 && second === 0;
  return new Intl.DateTimeFormat(locale() === "ja" ? "ja-JP" : "en-US", {
    timeZone: "UTC", // the wall time of the data, as it is
    year: "numeric", month: locale() === "ja" ? "2-digit" : "short", day: locale() === "ja" ? "2-digit" : "numeric",
    ...(midnight ? {} : { hour: "2-digit", minute: "2-digit", second: second ? "2-digit" : undefined, hour12: locale() !== "ja" }),
  }).format(wall);
}
