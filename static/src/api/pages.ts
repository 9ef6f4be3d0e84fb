// Lists as pages: `?limit=&cursor=&sort=&q=` and filters answered with `{"<items>": [...], "next": cursor | null}`
// (and `total` on the embedded store). `fetchAll` follows `next` for the pickers that need every item.

import { api } from "./client";

export type ListSort = "updated" | "title";

export interface ListParams {
  sort?: ListSort;
  q?: string;
  tag?: string;
  owner?: string;
  dataset?: string;
  shared?: boolean;
  limit?: number;
}

export interface PageOf<T> {
  items: T[];
  next: string | null;
  total?: number;
}

const LARGEST_PAGE = 200;

export async function fetchPage<T>(path: string, key: string, params: ListParams = {}, cursor: string | null = null): Promise<PageOf<T>> {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== "" && value !== false) query.set(name, String(value));
  }
  if (cursor) query.set("cursor", cursor);
  const body = await api.get<Record<string, unknown>>(`${path}?${query}`);
  return { items: body[key] as T[], next: (body.next as string | null) ?? null, total: body.total as number | undefined };
}

export async function fetchAll<T>(path: string, key: string, params: ListParams = {}): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const page: PageOf<T> = await fetchPage<T>(path, key, { ...params, limit: LARGEST_PAGE }, cursor);
    items.push(...page.items);
    cursor = page.next;
  } while (cursor);
  return items;
}
