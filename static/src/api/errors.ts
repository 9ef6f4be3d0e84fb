// The API's one error shape, {"error": {"code", "message", "details"}}, as an exception whose
// message is in the user's language: in Japanese from the catalog by code (details as parameters);
// in English the server's own message, which is English and names the thing (the catalog's
// English by code when there is none). Codes the catalog does not know keep the server's message.

import { has, locale, t } from "../i18n";

export function errorText(code: string, details: Record<string, unknown>, fallback: string): string {
  const key = `error.${code}`;
  if (!has(key) || (locale() === "en" && fallback)) return fallback;
  // Strings and numbers as they are; a list of names as one text ("売上、在庫").
  const params = Object.fromEntries(
    Object.entries(details)
      .map(([k, v]) => [k, Array.isArray(v) && v.every((x) => typeof x === "string") ? v.join(t("common.listSeparator")) : v])
      .filter(([, v]) => typeof v === "string" || typeof v === "number"),
  ) as Record<string, string | number>;
  const pointer = typeof details.pointer === "string" && details.pointer ? t("error.where", { pointer: details.pointer }) : "";
  return t(key, params) + pointer;
}

export class ApiError extends Error {
  // What the server said, in English (for logs and API users).
  readonly serverMessage: string;

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(errorText(code, details, message));
    this.serverMessage = message;
  }

  static from(status: number, body: unknown): ApiError {
    const error = (body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })?.error;
    if (error?.message) return new ApiError(status, error.code ?? "error", error.message, error.details ?? {});
    if (status === 0) return new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
    return new ApiError(status, "http", `The server answered ${status}. Try again in a moment.`, { status });
  }
}

export function parseJSON(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}
