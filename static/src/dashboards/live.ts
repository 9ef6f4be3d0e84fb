// The live dashboard socket (/api/dashboards/{id}/ws): a snapshot on join, then outputs and
// presence. A gap in a card's numbered outputs asks for a fresh snapshot; a socket dropped for
// being slow (4008) or lost rejoins; a revoked share (4403) or a deleted dashboard (4404) ends it.

import { api, freshToken, REVOKED, tokenRevoked } from "../api/client";
import type { CardResult, Dashboard, Parameter } from "../api/dashboards";
import { errorText } from "../api/errors";

export interface Viewer {
  user_id: string;
  name: string;
  email: string;
}

export interface SnapshotCard {
  card_id: string;
  title: string;
  parameters: Parameter[];
  seq: number;
  result: CardResult | null;
  // The current version of each dataset the card reads (id -> version).
  dataset_versions?: Record<string, number>;
}

export interface LiveHandlers {
  snapshot(dashboard: Dashboard, cards: Record<string, SnapshotCard>): void;
  output(key: string, result: CardResult, personal: boolean): void;
  presence(viewers: Viewer[]): void;
  // A tile's run waits its turn (position 1 is next) or starts (0).
  queued(key: string, position: number, personal: boolean): void;
  // A dataset got a new version: tiles that read an older one say so until their new output comes.
  newData(datasetId: string, version: number): void;
  state(state: "connecting" | "live" | "reconnecting"): void;
  // The socket will not come back: access revoked, dashboard deleted, or the server refused us.
  ended(code: number, message: string): void;
  error(message: string): void;
}

type ServerMessage =
  | { type: "snapshot"; dashboard: Dashboard; cards: Record<string, SnapshotCard>; viewers: Viewer[] }
  | { type: "output"; card: string; seq?: number; personal?: boolean; result: CardResult }
  | { type: "presence"; viewers: Viewer[] }
  | { type: "queued"; card: string; position: number; personal?: boolean }
  | { type: "new_data"; dataset_id: string; version: number }
  | { type: "error"; code: string; message: string };

const RETRY_MS = [500, 1000, 2000, 4000, 8000];

export class DashboardLive {
  private socket: WebSocket | null = null;
  private seqs = new Map<string, number>();
  private stopped = false;
  private failures = 0;

  constructor(
    private id: string,
    private handlers: LiveHandlers,
  ) {
    void this.connect();
  }

  send(message: { type: "parameters"; values: Record<string, unknown> } | { type: "resync" }): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  close(): void {
    this.stopped = true;
    this.socket?.close(1000);
    this.socket = null;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.handlers.state(this.failures ? "reconnecting" : "connecting");
    const token = await freshToken();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/dashboards/${encodeURIComponent(this.id)}/ws`, ["bi.v1", `bearer.${token}`]);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.failures = 0;
    };
    socket.onmessage = (event) => this.receive(JSON.parse(event.data as string) as ServerMessage);
    socket.onclose = (event) => void this.closed(socket, event, opened);
  }

  private async closed(socket: WebSocket, event: CloseEvent, opened: boolean): Promise<void> {
    if (this.socket !== socket || this.stopped) return;
    this.socket = null;
    if (event.code === 4403 || event.code === 4404) return this.handlers.ended(event.code, event.reason);
    if (event.code === REVOKED) tokenRevoked(); // renewed (or signed in again) as it reconnects
    if (!opened) {
      // A refused handshake says nothing in a browser: ask the API why (401 signs in again; 403/404 end).
      try {
        await api.get(`/api/dashboards/${encodeURIComponent(this.id)}`);
      } catch (error) {
        const status = (error as { status?: number }).status;
        if (status === 403 || status === 404) return this.handlers.ended(4000 + status, (error as Error).message);
      }
    }
    const wait = event.code === 4008 ? 0 : RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.handlers.state("reconnecting");
    setTimeout(() => void this.connect(), wait);
  }

  private receive(message: ServerMessage): void {
    switch (message.type) {
      case "snapshot":
        this.seqs = new Map(Object.entries(message.cards).map(([key, card]) => [key, card.seq]));
        this.handlers.state("live");
        this.handlers.snapshot(message.dashboard, message.cards);
        this.handlers.presence(message.viewers);
        return;
      case "output":
        if (!message.personal && message.seq !== undefined) {
          const last = this.seqs.get(message.card) ?? 0;
          if (message.seq <= last) return;
          if (message.seq > last + 1) return this.send({ type: "resync" }); // missed some: start again
          this.seqs.set(message.card, message.seq);
        }
        return this.handlers.output(message.card, message.result, Boolean(message.personal));
      case "presence":
        return this.handlers.presence(message.viewers);
      case "queued":
        return this.handlers.queued(message.card, message.position, Boolean(message.personal));
      case "new_data":
        return this.handlers.newData(message.dataset_id, message.version);
      case "error":
        return this.handlers.error(errorText(message.code, {}, message.message));
    }
  }
}
