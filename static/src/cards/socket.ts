// The card editing websocket (/api/cards/scratch/ws, or /api/cards/<id>/ws for a saved card): code in, numbered messages out. Signs in
// again when the handshake is refused, and resumes a dropped connection from the last message seen.
// A session the server cannot open says why (a `refused` message: the session limit, a dataset gone,
// no executor capacity, card execution off), as an ApiError. Leaving says so, and the session ends at
// once: `leave()` on a route change, `hide()` as the page goes away (the close message, and a DELETE
// that outlives the page); a socket that only drops keeps its session for the resume window.

import { api, freshToken, REVOKED, tokenRevoked } from "../api/client";
import { ApiError } from "../api/errors";
import { session } from "../auth/session";
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
  details?: Record<string, unknown>;
  error?: { code: string; message: string; details?: Record<string, unknown> };
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

  // `cardId`: a saved card's editor (its session lists under the card's title), else new code.
  constructor(
    private datasets: string[],
    private handlers: Handlers,
    private cardId: string | null = null,
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

  send(message: { type: "execute"; code: string; run_id: string; auto?: boolean } | { type: "interrupt" } | { type: "card"; card_id: string } | { type: "close" }): void {
    this.socket?.send(JSON.stringify(message));
  }

  // New code was saved as the card `cardId`: its session (and the next one) lists under the card's title.
  savedAs(cardId: string): void {
    if (this.cardId === cardId) return;
    this.cardId = cardId;
    if (this.isOpen) this.send({ type: "card", card_id: cardId });
  }

  // An explicit leave: the session ends now (its kernel is freed), not after the resume window.
  leave(): void {
    if (this.isOpen) this.send({ type: "close" });
    this.forget();
  }

  // The page is going away (pagehide): the close message may not leave before the page does, so a
  // DELETE that outlives the page (fetch keepalive: sendBeacon can only POST) ends the session too.
  hide(): void {
    const id = this.sessionId;
    if (this.isOpen) this.send({ type: "close" });
    if (id && session.token) {
      void fetch(`/api/card-sessions/${encodeURIComponent(id)}`, { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${session.token}` } }).catch(() => undefined);
    }
    this.forget();
  }

  private forget(): void {
    this.closedByUs = true;
    this.socket?.close(1000);
    this.socket = null;
    this.sessionId = null;
    this.lastSeq = 0;
  }

  private async connect(): Promise<void> {
    this.closedByUs = false;
    this.handlers.state("connecting");
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(await freshToken());
      } catch (error) {
        if (attempt >= 1 || error instanceof ApiError) throw error; // the server said why: no retry
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
    } else if (this.datasets.length || this.cardId) {
      query.set("datasets", this.datasets.join(",")); // the editor's choice, even none
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const path = this.cardId ? `/api/cards/${encodeURIComponent(this.cardId)}/ws` : "/api/cards/scratch/ws";
    return `${scheme}://${location.host}${path}?${query}`;
  }

  // A new session is open once its `session` message comes (a refused one gets `refused` instead); a
  // resumed one once the socket opens.
  private attempt(token: string): Promise<void> {
    const resuming = this.sessionId !== null;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url(), ["bi.v1", `bearer.${token}`]);
      let opened = false;
      let refused: ApiError | null = null;
      const ready = () => {
        if (this.closedByUs) {
          // left while it opened: end the session it got at once
          socket.send(JSON.stringify({ type: "close" }));
          socket.close(1000);
          return reject(new Error(t("run.sessionEnded")));
        }
        opened = true;
        this.socket = socket;
        this.handlers.state("open");
        resolve();
      };
      socket.onopen = () => resuming && ready();
      socket.onmessage = (event) => {
        const message = JSON.parse(event.data as string) as SocketMessage;
        if (message.type === "refused" && message.error) {
          refused = new ApiError(Number(message.status ?? 0), message.error.code, message.error.message, message.error.details ?? {});
          return;
        }
        if (!opened && message.type === "session") ready();
        this.receive(message);
      };
      socket.onclose = (event) => {
        if (!opened) return reject(refused ?? new Error(t("run.noSession")));
        if (this.socket === socket) this.socket = null;
        if (refused) {
          // the session it resumed has ended (or may no longer be used): say why
          this.sessionId = null;
          this.lastSeq = 0;
          return this.handlers.state("closed", refused.message);
        }
        if (event.code === REVOKED) tokenRevoked(); // the resume renews it, or signs in again
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
