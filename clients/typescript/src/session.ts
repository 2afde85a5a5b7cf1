// A signed-in session: the generated client plus bearer tokens that refresh themselves.
import { createClient, createConfig, type Client } from "./gen/client/index.js";

export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

/** The refresh token was refused (expired, revoked, or reused): sign in again. */
export class SessionExpiredError extends Error {
  constructor() {
    super("The session has ended; sign in again");
    this.name = "SessionExpiredError";
  }
}

export interface KeelSessionOptions {
  /** Where Keel answers, e.g. `https://keel.example.com` (no trailing slash). */
  baseUrl: string;
  tokens?: Tokens | null;
  /** Called with every new pair (rotation) and with null when the session ends: persist here. */
  onTokens?: (tokens: Tokens | null) => void;
  fetch?: typeof fetch;
}

/**
 * Pass `session.client` to any generated SDK function (`listProjects({ client: session.client })`).
 *
 * Every request carries the current access token. A 401 triggers one refresh shared by every
 * request that failed with the same token (N concurrent 401s → exactly one POST /auth/refresh,
 * because the refresh token rotates and a second use outside the server's grace window would
 * revoke the whole session), then each request is retried once with the new token.
 */
export class KeelSession {
  readonly baseUrl: string;
  readonly client: Client;
  /** How many POST /auth/refresh this session has made (for tests and diagnostics). */
  refreshCount = 0;
  private tokens: Tokens | null;
  private inflight: Promise<string> | null = null;
  private readonly rawFetch: typeof fetch;
  private readonly onTokens: ((tokens: Tokens | null) => void) | undefined;

  constructor(options: KeelSessionOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.tokens = options.tokens ?? null;
    this.onTokens = options.onTokens;
    const base = options.fetch ?? globalThis.fetch;
    this.rawFetch = (input, init) => base(input, init);
    this.client = createClient(
      createConfig({ baseUrl: this.baseUrl, fetch: (input, init) => this.authorizedFetch(input, init) }),
    );
  }

  get accessToken(): string | null {
    return this.tokens?.accessToken ?? null;
  }

  get signedIn(): boolean {
    return this.tokens !== null;
  }

  /** Adopt a pair from login/register (or null to forget it). */
  setTokens(tokens: Tokens | null): void {
    this.tokens = tokens ? { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken } : null;
    this.onTokens?.(this.tokens);
  }

  /**
   * A fresh access token for a caller whose token `stale` was refused. Callers that hold the
   * same stale token share one refresh; a caller whose token was already replaced gets the new
   * one without a request.
   */
  refreshAfter(stale: string | null): Promise<string> {
    const current = this.tokens;
    if (current === null) return Promise.reject(new SessionExpiredError());
    if (stale !== null && current.accessToken !== stale) return Promise.resolve(current.accessToken);
    if (this.inflight === null) {
      this.inflight = this.refreshNow(current.refreshToken).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  /** End the session on the server (other sessions of the user are untouched). */
  async logout(): Promise<void> {
    const current = this.tokens;
    this.setTokens(null);
    if (current === null) return;
    await this.rawFetch(`${this.baseUrl}/api/v1/auth/logout`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refreshToken: current.refreshToken }),
    });
  }

  private async refreshNow(refreshToken: string): Promise<string> {
    this.refreshCount += 1;
    const response = await this.rawFetch(`${this.baseUrl}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refreshToken }),
    });
    if (response.status === 401) {
      this.setTokens(null);
      throw new SessionExpiredError();
    }
    if (!response.ok) {
      throw new Error(`Refreshing the session failed with HTTP ${response.status}`);
    }
    const pair = (await response.json()) as Tokens;
    this.setTokens(pair);
    return pair.accessToken;
  }

  private async authorizedFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const token = this.tokens?.accessToken ?? null;
    if (token === null || request.headers.has("Authorization")) return this.rawFetch(request);
    const retry = request.clone();
    request.headers.set("Authorization", `Bearer ${token}`);
    const response = await this.rawFetch(request);
    if (response.status !== 401) return response;
    let fresh: string;
    try {
      fresh = await this.refreshAfter(token);
    } catch {
      return response; // the caller sees the original 401; `signedIn` is now false
    }
    retry.headers.set("Authorization", `Bearer ${fresh}`);
    return this.rawFetch(retry);
  }
}
