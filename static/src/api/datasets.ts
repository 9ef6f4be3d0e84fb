// The dataset API's shapes and calls, shared by the dataset pages and the card editor.

import { api, request } from "./client";
import { fetchAll, fetchPage, type ListParams } from "./pages";
import { upload, type Upload } from "./upload";

export interface Dataset {
  id: string;
  name: string;
  // Its earlier names: load_dataset still finds it under them.
  aliases?: string[];
  version: number;
  row_count: number;
  columns: { name: string; type: string }[];
  bytes: number;
  stored_bytes: number;
  encoding: string;
  delimiter: string;
  updated_at: string;
  detection?: { encoding_detected: boolean; encoding_confidence: number; delimiter_detected: boolean };
}

// What lists answer: the number of columns, not the columns.
export type DatasetSummary = Omit<Dataset, "columns" | "detection"> & { column_count: number };

export type DatasetVersion = Pick<Dataset, "version" | "row_count" | "bytes" | "stored_bytes" | "encoding" | "delimiter"> & {
  column_count: number;
  created_at: string;
  created_by: string;
  created_by_name?: string | null;
};

export interface PreviewPage {
  total_rows: number;
  columns: string[];
  rows: unknown[][];
}

export interface ReadOptions {
  name?: string;
  encoding?: string;
  delimiter?: string;
}

export const datasetsApi = {
  page: (params: ListParams, cursor: string | null = null) => fetchPage<DatasetSummary>("/api/datasets", "datasets", params, cursor),
  list: () => fetchAll<DatasetSummary>("/api/datasets", "datasets"),
  get: (id: string) => api.get<Dataset>(`/api/datasets/${encodeURIComponent(id)}`),
  // A page of its versions (who uploaded each, when), newest first; pass `next` back for the following one.
  versions: (id: string, cursor: string | null = null) => fetchPage<DatasetVersion>(`/api/datasets/${encodeURIComponent(id)}/versions`, "versions", {}, cursor),
  remove: (id: string) => api.delete(`/api/datasets/${encodeURIComponent(id)}`),
  // A new name; the old one stays an alias that load_dataset resolves.
  rename: (id: string, name: string) => request<Dataset>("PATCH", `/api/datasets/${encodeURIComponent(id)}`, { json: { name } }).then((r) => r.data),
  preview: (id: string, offset: number, limit: number) =>
    api.get<PreviewPage>(`/api/datasets/${encodeURIComponent(id)}/preview?offset=${offset}&limit=${limit}`),
  // A new dataset, or (with `into`) a new version of one.
  upload(file: File, options: ReadOptions, onProgress: (sent: number, total: number) => void, into?: string): Upload<Dataset> {
    const query = new URLSearchParams(Object.entries(options).filter(([, v]) => v) as [string, string][]);
    const path = into ? `/api/datasets/${encodeURIComponent(into)}/versions` : "/api/datasets";
    return upload<Dataset>(`${path}?${query}`, file, onProgress);
  },
};
