// The HTTP client of every page: sends the bearer token, turns error bodies into ApiError, and on a
// 401 renews the short-lived access token from the sign-in cookie (or, when that sign-in has ended,
// asks the user to sign in again without leaving the page) and retries once.

import { session } from "../auth/session";
import { ApiError, parseJSON } from "./errors";

export interface Response<T> {
  data: T;
  headers: Headers;
}

type Reauthenticate = () => Promise<void>;
let reauthenticate: Reauthenticate = async () => {
  throw new ApiError(401, "unauthorized", "Sign in again.");
};

// The sign-in dialog registers itself here; the client does not know about pages.
export function onUnauthorized(fn: Reauthenticate): void {
  reauthenticate = fn;
}

interface SignInBody {
  access_token: string;
  expires_in: number;
  user: Parameters<typeof session.signIn>[1];
}

// A new access token from the httpOnly refresh cookie, one tab at a time (the refresh token rotates, and
// two tabs presenting the same one would end the sign-in); the sign-in dialog when the sign-in has ended.
async function renew(): Promise<void> {
  const refresh = async (): Promise<boolean> => {
    if (!session.expired) return true; // another tab's renewal reached this one first
    try {
      const response = await fetch("/api/auth/refresh", {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: "{}",
      });
      if (!response.ok) return false;
      const body = parseJSON(await response.text()) as SignInBody;
      session.signIn(body.access_token, body.user, body.expires_in);
      return true;
    } catch {
      return false;
    }
  };
  const renewed = navigator.locks ? await navigator.locks.request("bi.refresh", refresh) : await refresh();
  if (!renewed) await reauthenticate();
}

// The server closed a socket with 4401 (session_revoked): the token we hold was revoked, so the next
// freshToken() renews it from the sign-in cookie, or asks to sign in when that sign-in has ended too.
export const REVOKED = 4401;
export function tokenRevoked(): void {
  if (session.user) session.signIn("", session.user, 0);
}

// Ends this tab's sign-in on the server: its refresh cookie and its access tokens stop working. The page
// signs out all the same when the server cannot be reached.
export async function endSignIn(): Promise<void> {
  const headers: Record<string, string> = { Accept: "application/json", "Content-Type": "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  await fetch("/api/auth/logout", { method: "POST", headers, body: "{}" }).catch(() => undefined);
}

// A valid token, renewed first when the one we hold has run out.
export async function freshToken(): Promise<string> {
  if (session.expired) await renew();
  return session.token ?? "";
}

// Runs `attempt`; on 401 from a signed-in tab, signs in again and runs it once more.
export async function withReauth<T>(attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401 || !session.user) throw error;
    session.signIn("", session.user, 0); // what we held was refused: renew it
    await renew();
    return attempt();
  }
}

// One key per user action: the server answers a create or save sent again with the same key (after a
// lost answer or a 503) with its first answer, instead of making a duplicate or a 409 from itself.
export function idempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function request<T>(
  method: string,
  path: string,
  options: { json?: unknown; headers?: Record<string, string> } = {},
): Promise<Response<T>> {
  const action: Record<string, string> = method === "POST" || method === "PUT" ? { "Idempotency-Key": idempotencyKey() } : {};
  return withReauth(async () => {
    const headers: Record<string, string> = { Accept: "application/json", ...action, ...options.headers };
    if (session.token) headers.Authorization = `Bearer ${session.token}`;
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    let response: globalThis.Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: options.json === undefined ? undefined : JSON.stringify(options.json),
      });
    } catch {
      throw ApiError.from(0, null);
    }
    const body = parseJSON(await response.text());
    if (!response.ok) throw ApiError.from(response.status, body);
    return { data: body as T, headers: response.headers };
  });
}

// Saves what `path` answers as the file `filename` (the browser's download), signed in as for any call.
export async function download(path: string, filename: string): Promise<void> {
  const blob = await withReauth(async () => {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${await freshToken()}` } }).catch(() => {
      throw ApiError.from(0, null);
    });
    if (!response.ok) throw ApiError.from(response.status, parseJSON(await response.text()));
    return response.blob();
  });
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path).then((r) => r.data),
  post: <T>(path: string, json: unknown = {}) => request<T>("POST", path, { json }).then((r) => r.data),
  delete: (path: string) => request<null>("DELETE", path).then(() => undefined),
};
