// The dashboard API's shapes and calls (documents: dashboards_spec/README.md).

import { api, download, request } from "./client";
import { fetchAll, fetchPage, type ListParams } from "./pages";
import type { Output } from "../outputs/render";

export type Access = "owner" | "edit" | "view";

export interface Parameter {
  name: string;
  type: "text" | "number" | "date" | "choice";
  label?: string;
  default: string | number;
  choices?: (string | number)[];
}

export interface Cell {
  card: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface CardEntry {
  key: string;
  card?: string;
  title?: string;
  code?: string;
  datasets?: string[];
  parameters?: Parameter[];
}

export interface DashboardDocument {
  uid?: string;
  schemaVersion: number;
  title: string;
  description?: string;
  tags?: string[];
  parameters?: Parameter[];
  cards: CardEntry[];
  layout: Cell[];
  refresh?: { every_seconds: number } | null;
}

export interface Dashboard {
  id: string;
  uid: string;
  owner_id: string;
  version: number;
  document: DashboardDocument;
  access: Access;
  created_at: string;
  updated_at: string;
  updated_by: string;
}

// What a list shows of a dashboard: never its document (GET the dashboard for that).
export interface DashboardSummary {
  id: string;
  uid: string;
  owner_id: string;
  version: number;
  title: string;
  // cut to 300 characters (ending in "…")
  description: string;
  tags: string[];
  card_count: number;
  parameter_count: number;
  access: Access;
  created_at: string;
  updated_at: string;
  updated_by: string;
}

// What a list of versions shows of one; GET versions/{version} for its document.
export interface DashboardVersionStamp {
  version: number;
  created_at: string;
  created_by: string;
  created_by_name?: string | null;
}

export interface DashboardVersion extends DashboardVersionStamp {
  document: DashboardDocument;
}

export interface Share {
  email: string;
  name: string | null;
  user_id: string;
  permission: "view" | "edit";
}

// A dataset the dashboard's cards read that the caller may not (a version the caller saves runs without it).
export interface UnreadableDataset {
  id: string;
  name: string;
  cards: string[];
}

export interface CardResult {
  status: string;
  outputs: Output[];
  cached?: boolean;
  // null for a run that did not happen (refused, or stopped before its end)
  execution_time_ms?: number | null;
  truncated?: boolean;
  // Freshness, set by the run and kept by cache hits: when and why it was computed ("unknown" for
  // outputs stored before outputs said), from which card version and dataset versions (id -> version).
  computed_at?: string | null;
  reason?: "edit" | "schedule" | "new_data" | "forced" | "unknown" | null;
  card_version?: number | null;
  dataset_versions?: Record<string, number> | null;
}

const path = (id: string) => `/api/dashboards/${encodeURIComponent(id)}`;

export const dashboardsApi = {
  page: (params: ListParams, cursor: string | null = null) => fetchPage<DashboardSummary>("/api/dashboards", "dashboards", params, cursor),
  list: () => fetchAll<DashboardSummary>("/api/dashboards", "dashboards"),
  get: (id: string) => api.get<Dashboard>(path(id)),
  create: (title: string) => api.post<Dashboard>("/api/dashboards", { schemaVersion: 1, title, cards: [], layout: [] }),
  // Saves a new version edited from `from`: 409 if someone saved since, 422 with details.pointer.
  save: (id: string, from: number, document: DashboardDocument) =>
    request<Dashboard>("PUT", path(id), { json: document, headers: { "If-Match": `"${from}"` } }).then((r) => r.data),
  // force: past the cache (owners and editors), what "Re-run" on a tile does.
  run: (id: string, key: string, force = false) => api.post<CardResult>(`${path(id)}/cards/${encodeURIComponent(key)}/run`, { force }),
  // The first page of the people it is shared with (the newest grant first), with the datasets of its cards I
  // may not read; `shares` with its `next` gives the following pages.
  sharing: (id: string) => api.get<{ shares: Share[]; next: string | null; unreadable_datasets: UnreadableDataset[] }>(`${path(id)}/shares`),
  // A page of the people it is shared with, the newest grant first; pass `next` back for the following one.
  shares: (id: string, cursor: string | null = null) => fetchPage<Share>(`${path(id)}/shares`, "shares", {}, cursor),
  // A page of its versions, newest first.
  versions: (id: string, cursor: string | null = null) => fetchPage<DashboardVersionStamp>(`${path(id)}/versions`, "versions", {}, cursor),
  version: (id: string, version: number) => api.get<DashboardVersion>(`${path(id)}/versions/${version}`),
  // Makes version `n` current again, as a new version; `left_out`: the cards of it that did not come back.
  restore: (id: string, n: number) => api.post<Dashboard & { left_out: CardEntry[] }>(`${path(id)}/versions/${n}/restore`),
  remove: (id: string) => api.delete(path(id)),
  // The document with its cards inline and datasets by name, saved as `<title>.json`.
  exportFile: (id: string, title: string) => download(`${path(id)}/export`, `${title.replace(/[\\/:*?"<>|]/g, "_")}.json`),
  // Creates the dashboard of the document's uid, or saves a new version of it.
  importDocument: (document: unknown) => api.post<Dashboard>("/api/dashboards/import", document),
  // A copy that the caller owns, its cards copied as new cards of theirs.
  duplicate: (id: string, title: string) => api.post<Dashboard>(`${path(id)}/duplicate`, { title }),
  share: (id: string, email: string, permission: "view" | "edit") =>
    request<Share>("PUT", `${path(id)}/shares`, { json: { email, permission } }).then((r) => r.data),
  revoke: (id: string, email: string) => request<null>("DELETE", `${path(id)}/shares`, { json: { email } }).then(() => undefined),
};

// The size of a card put on a dashboard: half the width, tall enough for a chart.
export const NEW_CELL = { w: 6, h: 7 };

// Adds a saved card to `document` under a new key, in a cell below `layout` (the cells as they
// are now); returns the key.
export function placeCard(document: DashboardDocument, cardId: string, layout: Cell[] = document.layout): string {
  const keys = new Set(document.cards.map((c) => c.key));
  let n = document.cards.length + 1;
  while (keys.has(`card-${n}`)) n++;
  const key = `card-${n}`;
  const bottom = Math.max(0, ...layout.map((cell) => cell.y + cell.h));
  document.cards.push({ key, card: cardId });
  document.layout = [...layout, { card: key, x: 0, y: bottom, ...NEW_CELL }];
  return key;
}

// Puts a saved card on a dashboard and saves it as a new version.
export async function appendCard(dashboard: Dashboard, cardId: string): Promise<Dashboard> {
  const document = structuredClone(dashboard.document);
  placeCard(document, cardId);
  return dashboardsApi.save(dashboard.id, dashboard.version, document);
}
