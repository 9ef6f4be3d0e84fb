// The dashboard API's shapes and calls (server/handlers/dashboards.py).

import { api, request } from "./client";
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

export interface DashboardDocument {
  uid?: string;
  schemaVersion: 1;
  title: string;
  description?: string;
  parameters?: Parameter[];
  cards: { key: string; card: string }[];
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
  updated_at: string;
}

export interface RunResult {
  status: string;
  outputs: Output[];
  cached: boolean;
  execution_time_ms: number;
}

export interface Share {
  email: string;
  name: string;
  permission: "view" | "edit";
}

const path = (id: string) => `/api/dashboards/${encodeURIComponent(id)}`;

export const dashboardsApi = {
  list: () => api.get<{ dashboards: Dashboard[] }>("/api/dashboards").then((r) => r.dashboards),
  get: (id: string) => api.get<Dashboard>(path(id)),
  create: (title: string) =>
    api.post<Dashboard>("/api/dashboards", { schemaVersion: 1, title, cards: [], layout: [], refresh: null }),
  // Saves a new version edited from `from`; 409 when someone saved since, 422 naming the problem.
  save: (id: string, from: number, document: DashboardDocument) =>
    request<Dashboard>("PUT", path(id), { json: document, headers: { "If-Match": `"${from}"` } }).then((r) => r.data),
  run: (id: string, key: string) => api.post<RunResult>(`${path(id)}/cards/${encodeURIComponent(key)}/run`, {}),
  shares: (id: string) => api.get<{ shares: Share[] }>(`${path(id)}/shares`).then((r) => r.shares),
  share: (id: string, email: string, permission: Share["permission"]) =>
    request<Share>("PUT", `${path(id)}/shares`, { json: { email, permission } }).then((r) => r.data),
  revoke: (id: string, email: string) => request<null>("DELETE", `${path(id)}/shares`, { json: { email } }),
};
