// Keel's REST API for the console: bearer tokens, one shared refresh, the error envelope.
const TOKENS_KEY = "keel.console.tokens";

/** An error answer of the API, in the one envelope of SPEC §2. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || "HTTP_ERROR";
    this.details = Array.isArray(body?.details) ? body.details : [];
    this.requestId = body?.requestId || null;
    this.retryAfter = retryAfter;
  }
}

/** What to tell a person about an error, one line each. */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    return { title: "Keel could not be reached. Check your connection and try again.", lines: [] };
  }
  const hints = {
    UNAUTHORIZED: "Your session has ended. Please sign in again.",
    INVALID_CREDENTIALS: "That email and password do not match an account.",
    MFA_REQUIRED: "This account uses two-factor authentication: enter the 6-digit code from your authenticator app.",
    FORBIDDEN: "You are not allowed to do that.",
    NOT_FOUND: "It no longer exists (someone may have deleted it).",
    PRECONDITION_FAILED: "Someone else changed this in the meantime. The latest version has been loaded; check it and try again.",
    RATE_LIMITED: "Too many requests.",
    OVERLOADED: "Keel is busy right now.",
    SERVICE_UNAVAILABLE: "Keel is temporarily unavailable.",
    INTERNAL_ERROR: "Something went wrong on the server.",
    PAYLOAD_TOO_LARGE: "That is too large to send.",
  };
  let title = hints[error.code] || error.message;
  if (error.retryAfter) title += ` Try again in ${error.retryAfter} s.`;
  const lines = error.details.map((d) => (d.field ? `${d.field}: ${d.message}` : d.message));
  if (error.requestId) lines.push(`Request id: ${error.requestId} (quote it when reporting)`);
  if (hints[error.code] && error.message && !lines.length && error.code !== "INVALID_CREDENTIALS") {
    lines.push(error.message);
  }
  return { title, lines, code: error.code };
}

function loadTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS_KEY) || "null");
  } catch {
    return null;
  }
}

export class Api {
  constructor() {
    this.tokens = loadTokens();
    this.inflight = null;
    this.listeners = new Set();
  }

  onSignOut(listener) {
    this.listeners.add(listener);
  }

  get signedIn() {
    return this.tokens !== null;
  }

  get accessToken() {
    return this.tokens?.accessToken ?? null;
  }

  setTokens(tokens) {
    this.tokens = tokens ? { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken } : null;
    if (this.tokens) sessionStorage.setItem(TOKENS_KEY, JSON.stringify(this.tokens));
    else {
      sessionStorage.removeItem(TOKENS_KEY);
      this.listeners.forEach((listener) => listener());
    }
  }

  /** One refresh for every caller whose token `stale` was refused (the refresh token rotates). */
  refreshAfter(stale) {
    if (!this.tokens) return Promise.reject(new ApiError(401, { code: "UNAUTHORIZED" }));
    if (stale && this.tokens.accessToken !== stale) return Promise.resolve(this.tokens.accessToken);
    if (!this.inflight) {
      const refreshToken = this.tokens.refreshToken;
      this.inflight = this.send("POST", "/api/v1/auth/refresh", { body: { refreshToken }, auth: false })
        .then((pair) => {
          this.setTokens(pair.body);
          return pair.body.accessToken;
        })
        .catch((error) => {
          if (error instanceof ApiError && error.status === 401) this.setTokens(null);
          throw error;
        })
        .finally(() => {
          this.inflight = null;
        });
    }
    return this.inflight;
  }

  /**
   * fetch + JSON; resolves {body, headers}; rejects with ApiError.
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, headers?: Record<string, string>, auth?: boolean, query?: Record<string, unknown>}} [options]
   * @returns {Promise<{body: any, headers: Headers}>}
   */
  async send(method, path, { body, headers = {}, auth = true, query } = {}) {
    let url = path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
      }
      if ([...params].length) url += `?${params}`;
    }
    const token = auth ? this.accessToken : null;
    const attempt = (bearer) =>
      fetch(url, {
        method,
        headers: {
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}),
          ...headers,
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    let response = await attempt(token);
    if (response.status === 401 && token) {
      let fresh;
      try {
        fresh = await this.refreshAfter(token);
      } catch {
        fresh = null;
      }
      if (fresh) response = await attempt(fresh);
    }
    const text = await response.text();
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { error: text.slice(0, 200) };
      }
    }
    if (!response.ok) {
      throw new ApiError(response.status, parsed, response.headers.get("Retry-After"));
    }
    return { body: parsed, headers: response.headers };
  }

  get(path, query) {
    return this.send("GET", path, { query }).then((r) => r.body);
  }

  async signIn({ email, password, totp }) {
    const body = { email, password };
    if (totp) body.totp = totp;
    const { body: out } = await this.send("POST", "/api/v1/auth/login", { body, auth: false });
    this.setTokens(out);
    return out.user;
  }

  async signOut() {
    const tokens = this.tokens;
    if (!tokens) return;
    try {
      await this.send("POST", "/api/v1/auth/logout", { body: { refreshToken: tokens.refreshToken }, auth: false });
    } finally {
      this.setTokens(null);
    }
  }
}
