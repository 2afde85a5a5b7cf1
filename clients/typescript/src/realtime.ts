// Live project events over WebSocket (docs/realtime.md), resuming after every disconnect.
import type { ProjectOut } from "./gen/types.gen.js";
import { SessionExpiredError, type KeelSession } from "./session.js";

export interface ProjectEvent {
  id: string;
  type: "project.created" | "project.updated" | "project.deleted";
  data: ProjectOut;
  timestamp: string;
}

export type SubscriptionStatus = "connecting" | "live" | "reconnecting" | "closed";

export interface SubscribeOptions {
  session: KeelSession;
  onEvent: (event: ProjectEvent) => void;
  /** The events after `lastEventId` are gone (retention window): reload what you show. */
  onResync?: () => void;
  onStatus?: (status: SubscriptionStatus) => void;
  /** Resume after this event id (e.g. one persisted by an earlier page). */
  lastEventId?: string | null;
  projectIds?: string[];
  /** A WebSocket implementation; the global one by default. */
  WebSocket?: typeof WebSocket;
  maxBackoffMs?: number;
}

const UNAUTHORIZED = 4401;

/**
 * A subscription that reconnects on any close or network error with `lastEventId`, so no
 * committed event is missed or repeated (within the server's retention window). A 4401 close
 * (expired token) refreshes the session first; a session that cannot refresh ends it.
 */
export class Subscription {
  lastEventId: string | null;
  status: SubscriptionStatus = "connecting";
  private socket: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly Impl: typeof WebSocket;

  constructor(private readonly options: SubscribeOptions) {
    this.lastEventId = options.lastEventId ?? null;
    const Impl = options.WebSocket ?? globalThis.WebSocket;
    if (Impl === undefined) throw new Error("No WebSocket implementation available");
    this.Impl = Impl;
    this.connect();
  }

  close(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.close(1000, "Client closed");
    this.setStatus("closed");
  }

  private setStatus(status: SubscriptionStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.options.onStatus?.(status);
  }

  private connect(): void {
    const { session } = this.options;
    const token = session.accessToken;
    if (token === null) {
      this.close();
      return;
    }
    const url = `${session.baseUrl.replace(/^http/, "ws")}/api/v1/ws`;
    const socket = new this.Impl(url);
    this.socket = socket;
    socket.onopen = () => {
      const auth: Record<string, unknown> = { type: "auth", accessToken: token };
      if (this.lastEventId !== null) auth.lastEventId = this.lastEventId;
      if (this.options.projectIds) auth.projectIds = this.options.projectIds;
      socket.send(JSON.stringify(auth));
    };
    socket.onmessage = (message: MessageEvent) => this.receive(String(message.data));
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      void this.reconnect(event.code, token);
    };
  }

  private receive(text: string): void {
    let message: { type?: string; id?: string };
    try {
      message = JSON.parse(text) as { type?: string; id?: string };
    } catch {
      return;
    }
    if (message.type === "ready") {
      this.attempt = 0;
      this.setStatus("live");
    } else if (message.type === "resync") {
      this.options.onResync?.();
    } else if (typeof message.id === "string" && message.type?.startsWith("project.")) {
      this.lastEventId = message.id;
      this.options.onEvent(message as ProjectEvent);
    }
  }

  private async reconnect(code: number, token: string): Promise<void> {
    this.setStatus("reconnecting");
    if (code === UNAUTHORIZED) {
      try {
        await this.options.session.refreshAfter(token);
      } catch (error) {
        if (error instanceof SessionExpiredError) {
          this.close();
          return;
        }
      }
    }
    const cap = this.options.maxBackoffMs ?? 15_000;
    const delay = Math.min(cap, 250 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }
}

export function subscribe(options: SubscribeOptions): Subscription {
  return new Subscription(options);
}
