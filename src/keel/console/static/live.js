// Live project events over the WebSocket API (docs/realtime.md), resuming with lastEventId.
const UNAUTHORIZED = 4401;

export class LiveEvents {
  constructor(api, { onEvent, onResync, onStatus }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onResync = onResync;
    this.onStatus = onStatus;
    this.lastEventId = null;
    this.socket = null;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "Signed out");
    this.onStatus("offline");
  }

  connect() {
    const token = this.api.accessToken;
    if (!token || this.stopped) return;
    this.onStatus("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/v1/ws`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      const auth = { type: "auth", accessToken: token };
      if (this.lastEventId) auth.lastEventId = this.lastEventId;
      socket.send(JSON.stringify(auth));
    });
    socket.addEventListener("message", (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "ready") {
        this.attempt = 0;
        this.onStatus("live");
      } else if (data.type === "resync") {
        this.onResync();
      } else if (typeof data.id === "string" && String(data.type).startsWith("project.")) {
        this.lastEventId = data.id;
        this.onEvent(data);
      }
    });
    socket.addEventListener("close", async (event) => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.onStatus("reconnecting");
      if (event.code === UNAUTHORIZED) {
        try {
          await this.api.refreshAfter(token);
        } catch {
          return; // the session has ended; the app signs out
        }
      }
      const delay = Math.min(15000, 250 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }
}
