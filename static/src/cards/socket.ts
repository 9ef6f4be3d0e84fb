// The card editing websocket (/api/cards/scratch/ws): code in, numbered messages out. Signs in
// again when the handshake is refused, and resumes a dropped connection from the last message seen.

import { api, freshToken } from "../api/client";
import type { Output } from "../outputs/render";
import { t } from "../i18n";

export interface SocketMessage {
  seq?: number;
  type: string;
  run_id?: string;
  session_id?: string;
  output?: Output;
  state?: string;
  status?: string;
  code?: string;
  message?: string;
  reason?: string;
  execution_time_ms?: number | null;
  truncated?: boolean;
  syntax?: SyntaxProblem;
}

// Where an auto-run's code does not parse (a `done` with status "syntax_error"); 1-based.
export interface SyntaxProblem {
  line: number;
  column: number;
  message: string;
}

export type ConnectionState = "connecting" | "open" | "closed";

interface Handlers {
  message(message: SocketMessage): void;
  state(state: ConnectionState, detail?: string): void;
}

const RESUME_TRIES = 3;

export class CardConnection {
  private socket: WebSocket | null = null;
  private sessionId: string | null = null;
  private lastSeq = 0;
  private closedByUs = false;
  private opening: Promise<void> | null = null;

  constructor(
    private datasets: string[],
    private handlers: Handlers,
  ) {}

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  // Opens (or waits for) the connection; rejects with a message a person can act on.
  open(): Promise<void> {
    if (this.isOpen) return Promise.resolve();
    this.opening ??= this.connect().finally(() => (this.opening = null));
    return this.opening;
  }

  send(message: { type: "execute"; code: string; run_id: string; auto?: boolean } | { type: "interrupt" }): void {
    this.socket?.send(JSON.stringify(message));
  }

  close(): void {
    this.closedByUs = true;
    this.socket?.close(1000);
    this.socket = null;
  }

  private async connect(): Promise<void> {
    this.closedByUs = false;
    this.handlers.state("connecting");
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(await freshToken());
      } catch (error) {
        if (attempt >= 1) throw error;
        // A refused handshake says nothing in a browser: ask the API why (a 401 signs in again).
        await api.get("/api/me");
      }
    }
  }

  private url(): string {
    const query = new URLSearchParams();
    if (this.sessionId) {
      query.set("session", this.sessionId);
      query.set("after", String(this.lastSeq));
    } else if (this.datasets.length) {
      query.set("datasets", this.datasets.join(","));
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/api/cards/scratch/ws?${query}`;
  }

  private attempt(token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url(), ["bi.v1", `bearer.${token}`]);
      let opened = false;
      socket.onopen = () => {
        opened = true;
        this.socket = socket;
        this.handlers.state("open");
        resolve();
      };
      socket.onmessage = (event) => this.receive(JSON.parse(event.data as string) as SocketMessage);
      socket.onclose = (event) => {
        if (!opened)
          return reject(new Error(t("run.noSession")));
        if (this.socket === socket) this.socket = null;
        if (!this.closedByUs) void this.resume(event.reason);
      };
    });
  }

  private receive(message: SocketMessage): void {
    if (message.seq !== undefined) {
      if (message.seq <= this.lastSeq) return; // replayed twice across a resume
      this.lastSeq = message.seq;
    }
    if (message.type === "session") this.sessionId = message.session_id ?? null;
    if (message.type === "closed" || message.type === "broken") {
      this.sessionId = null;
      this.lastSeq = 0;
    }
    this.handlers.message(message);
  }

  private async resume(reason: string): Promise<void> {
    if (!this.sessionId) return this.handlers.state("closed"); // the server ended the session and said why
    for (let attempt = 0; attempt < RESUME_TRIES && this.sessionId && !this.closedByUs; attempt++) {
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
      try {
        return await this.attempt(await freshToken());
      } catch {
        // try again
      }
    }
    this.sessionId = null;
    this.lastSeq = 0;
    if (!this.closedByUs) this.handlers.state("closed", reason || t("run.connectionLost"));
  }
}
