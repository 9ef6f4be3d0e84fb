// The live dashboard websocket (/api/dashboards/{id}/ws): a snapshot, then numbered outputs per
// card, personal outputs and presence. A gap in a card's numbers asks for a fresh snapshot; a
// socket the server dropped for being slow (4008) rejoins; access revoked (4403) or a deleted
// dashboard (4404) ends it with a reason.

import { freshToken } from "../api/client";
import type { Dashboard, RunResult } from "../api/dashboards";

export interface Viewer {
  user_id: string;
  name: string;
  email: string;
}

export interface CardState {
  card_id: string;
  title: string;
  parameters: { name: string }[];
  seq: number;
  result: RunResult | null;
}

export interface Handlers {
  snapshot(dashboard: Dashboard, cards: Record<string, CardState>, viewers: Viewer[]): void;
  output(key: string, result: RunResult, personal: boolean): void;
  presence(viewers: Viewer[]): void;
  ended(reason: string): void;
}

const REJOIN_AFTER_MS = 1000;

export class DashboardConnection {
  private socket: WebSocket | null = null;
  private seq = new Map<string, number>();
  private stopped = false;

  constructor(
    private id: string,
    private handlers: Handlers,
  ) {}

  async open(): Promise<void> {
    const token = await freshToken();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/dashboards/${encodeURIComponent(this.id)}/ws`, ["bi.v1", `bearer.${token}`]);
    this.socket = socket;
    socket.onmessage = (event) => this.receive(JSON.parse(event.data as string));
    socket.onclose = (event) => {
      if (this.stopped || this.socket !== socket) return;
      if (event.code === 4403 || event.code === 4404) return this.handlers.ended(event.reason);
      setTimeout(() => void this.open(), REJOIN_AFTER_MS); // dropped, slow or restarted: a fresh snapshot
    };
  }

  // Run the cards with these parameter values, for me alone; none: back to what everyone sees.
  parameters(values: Record<string, unknown>): void {
    this.send(Object.keys(values).length ? { type: "parameters", values } : { type: "resync" });
  }

  // A fresh snapshot (after my own save, say).
  resync(): void {
    this.send({ type: "resync" });
  }

  close(): void {
    this.stopped = true;
    this.socket?.close(1000);
  }

  private send(message: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private receive(message: any): void {
    if (message.type === "snapshot") {
      this.seq = new Map(Object.entries(message.cards as Record<string, CardState>).map(([key, card]) => [key, card.seq]));
      this.handlers.snapshot(message.dashboard, message.cards, message.viewers);
    } else if (message.type === "output" && message.personal) {
      this.handlers.output(message.card, message.result, true);
    } else if (message.type === "output") {
      const expected = (this.seq.get(message.card) ?? 0) + 1;
      if (message.seq < expected) return; // already shown (it came in a snapshot)
      if (message.seq > expected) return this.send({ type: "resync" }); // missed one: start again from a snapshot
      this.seq.set(message.card, message.seq);
      this.handlers.output(message.card, message.result, false);
    } else if (message.type === "presence") {
      this.handlers.presence(message.viewers);
    }
  }
}
