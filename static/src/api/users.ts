// The people API: users (admins), my password and personal access tokens, and the audit trail (admins).

import type { User } from "../auth/session";
import { api, request } from "./client";
import { fetchPage } from "./pages";

export interface Member extends User {
  active: boolean;
  password_change_required: boolean;
  created_at: string;
}

export interface PersonalToken {
  id: string;
  name: string;
  created_at: string;
  expires_at: string;
}

export interface AuditEvent {
  id: string;
  at: string;
  event: string;
  user_id: string | null;
  // Its user's name (null for none, or a removed user).
  user_name: string | null;
  [field: string]: unknown;
}

export interface AuditFilter {
  event?: string;
  user?: string;
  since?: string;
  until?: string;
}

const user = (id: string) => `/api/users/${encodeURIComponent(id)}`;

export const usersApi = {
  // A page of the users, newest first; pass `next` back for the following one.
  page: (cursor: string | null = null) => fetchPage<Member>("/api/users", "users", {}, cursor),
  create: (fields: { email: string; name: string; role: "admin" | "member"; password: string }) => api.post<Member>("/api/users", fields),
  update: (id: string, change: Partial<Pick<Member, "name" | "role" | "active">>) => request<Member>("PATCH", user(id), { json: change }).then((r) => r.data),
  // A one-time password, shown once: signing in with it only lets the user choose a new one.
  resetPassword: (id: string) => api.post<{ password: string }>(`${user(id)}/password-reset`),
};

export const meApi = {
  // New tokens, as at sign-in: every other token of mine stops working.
  changePassword: (current: string, next: string) =>
    api.post<{ access_token: string; expires_in: number; user: User }>("/api/me/password", { current_password: current, new_password: next }),
  tokens: () => api.get<{ tokens: PersonalToken[] }>("/api/me/tokens").then((body) => body.tokens),
  // The token itself comes this once.
  createToken: (name: string, days: number) => api.post<PersonalToken & { token: string }>("/api/me/tokens", { name, expires_in_days: days }),
  revokeToken: (id: string) => api.delete(`/api/me/tokens/${encodeURIComponent(id)}`),
};

export const auditApi = {
  // A page of the trail, newest first, with the filters given; pass `next` back for the following one.
  page: (filter: AuditFilter, cursor: string | null = null) => {
    const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v) as [string, string][]);
    if (cursor) query.set("cursor", cursor);
    return api.get<{ events: AuditEvent[]; next: string | null }>(`/api/audit?${query}`);
  },
};
