// The card API's shapes and calls.

import { api, request } from "./client";
import { fetchAll, fetchPage, type ListParams } from "./pages";
import type { CardResult } from "./dashboards";

// A typed parameter of a card: `name` is a Python name the code reads, `label` what people see.
export interface CardParameter {
  name: string;
  type: "text" | "number" | "date" | "choice";
  default: string | number;
  choices?: (string | number)[];
  label?: string;
}

export interface Card {
  id: string;
  title: string;
  code: string;
  datasets: string[];
  parameters: CardParameter[];
  version: number;
  updated_at: string;
  updated_by: string;
  tags?: string[];
  // What I may do to it (one card read): owner, edit, or view (run it, not change it).
  access?: "owner" | "edit" | "view";
}

// What a list shows of a card: not its code or parameters (their count); GET the card for those.
export type CardSummary = Omit<Card, "code" | "parameters"> & { parameter_count: number };

export interface CardVersionSummary {
  version: number;
  title: string;
  created_at: string;
  created_by: string;
  created_by_name?: string | null;
}

export type CardVersion = CardVersionSummary & { code: string; datasets: string[]; parameters: CardParameter[]; tags: string[] };

export interface CardFields {
  title: string;
  code: string;
  datasets: string[];
}

export const cardsApi = {
  page: (params: ListParams, cursor: string | null = null) => fetchPage<CardSummary>("/api/cards", "cards", params, cursor),
  list: () => fetchAll<CardSummary>("/api/cards", "cards"),
  get: (id: string) => api.get<Card>(`/api/cards/${encodeURIComponent(id)}`),
  // A page of its versions (without code or parameters), newest first; pass `next` back for the following one.
  versions: (id: string, cursor: string | null = null) => fetchPage<CardVersionSummary>(`/api/cards/${encodeURIComponent(id)}/versions`, "versions", {}, cursor),
  // One version whole, with its code.
  version: (id: string, n: number) => api.get<CardVersion>(`/api/cards/${encodeURIComponent(id)}/versions/${n}`),
  // Runs its current version with `parameters` (the rest at their defaults); identical runs come from the cache.
  run: (id: string, parameters: Record<string, unknown>) => api.post<CardResult>(`/api/cards/${encodeURIComponent(id)}/run`, { parameters }),
  create: (fields: CardFields, parameters: CardParameter[] = []) => api.post<Card>("/api/cards", { ...fields, parameters }),
  // Saves a new version edited from `from`; a 409 ApiError names the current version otherwise.
  update: (id: string, from: number, fields: CardFields & { tags?: string[] }, parameters: CardParameter[]) =>
    request<Card>("PUT", `/api/cards/${encodeURIComponent(id)}`, {
      json: { ...fields, parameters },
      headers: { "If-Match": `"${from}"` },
    }).then((r) => r.data),
};
