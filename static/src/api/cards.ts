// The card API's shapes and calls.

import { api, request } from "./client";
import { fetchAll, fetchPage, type ListParams } from "./pages";
import type { CardResult } from "./dashboards";

export interface Card {
  id: string;
  title: string;
  code: string;
  datasets: string[];
  parameters: unknown[];
  version: number;
  updated_at: string;
  updated_by: string;
  tags?: string[];
  // What I may do to it (one card read): owner, edit, or view (run it, not change it).
  access?: "owner" | "edit" | "view";
}

export type CardSummary = Omit<Card, "code">;

export interface CardVersionSummary {
  version: number;
  title: string;
  datasets: string[];
  parameters: unknown[];
  tags: string[];
  created_at: string;
  created_by: string;
}

export interface CardFields {
  title: string;
  code: string;
  datasets: string[];
}

export const cardsApi = {
  page: (params: ListParams, cursor: string | null = null) => fetchPage<CardSummary>("/api/cards", "cards", params, cursor),
  list: () => fetchAll<CardSummary>("/api/cards", "cards"),
  get: (id: string) => api.get<Card>(`/api/cards/${encodeURIComponent(id)}`),
  // A page of its versions (without code), newest first; pass `next` back for the following one.
  versions: (id: string, cursor: string | null = null) => fetchPage<CardVersionSummary>(`/api/cards/${encodeURIComponent(id)}/versions`, "versions", {}, cursor),
  // Runs its current version with `parameters` (the rest at their defaults); identical runs come from the cache.
  run: (id: string, parameters: Record<string, unknown>) => api.post<CardResult>(`/api/cards/${encodeURIComponent(id)}/run`, { parameters }),
  create: (fields: CardFields) => api.post<Card>("/api/cards", { ...fields, parameters: [] }),
  // Saves a new version edited from `from`; a 409 ApiError names the current version otherwise.
  update: (id: string, from: number, fields: CardFields, parameters: unknown[]) =>
    request<Card>("PUT", `/api/cards/${encodeURIComponent(id)}`, {
      json: { ...fields, parameters },
      headers: { "If-Match": `"${from}"` },
    }).then((r) => r.data),
};
