// My interactive card sessions (each holds a kernel): list and close, for when the limit is reached.

import { api } from "./client";

export interface CardSession {
  id: string;
  created_at: string;
  last_used_at: string;
  busy: boolean;
  card_id: string | null;
  card_title: string | null;
  datasets: string[];
}

export interface CardSessions {
  sessions: CardSession[];
  // Interactive sessions of every kind I hold (Jupyter kernels too), and how many I may.
  held: number;
  limit: number;
}

export const sessionsApi = {
  list: () => api.get<CardSessions>("/api/card-sessions"),
  close: (id: string) => api.delete(`/api/card-sessions/${encodeURIComponent(id)}`),
};
