"""A real HTTP receiver on loopback for webhook tests: records requests, fails on demand,
and deduplicates by `webhook-id` like a careful consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    path: str = "/hook"


@dataclass
class Receiver:
    """What arrived, in arrival order. `fail_first` answers 500 to that many requests."""

    port: int = 0
    fail_first: int = 0
    status: int = 204
    # Seconds the first request is held before the answer (to kill the sender meanwhile).
    hold_first: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def unique(self) -> list[Received]:
        """Requests deduplicated by webhook-id (first arrival kept)."""
        seen: set[str] = set()
        kept = []
        with self.lock:
            for item in self.requests:
                if item.headers["webhook-id"] not in seen:
                    seen.add(item.headers["webhook-id"])
                    kept.append(item)
        return kept

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@contextmanager
def run_receiver(receiver: Receiver | None = None) -> Iterator[Receiver]:
    state = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            with state.lock:
                state.requests.append(
                    Received(
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        path=self.path,
                    )
                )
                failing = len(state.requests) <= state.fail_first
                hold = state.hold_first if len(state.requests) == 1 else 0.0
            if hold:
                time.sleep(hold)
            self.send_response(500 if failing else state.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
