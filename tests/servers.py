"""Real uvicorn processes for multi-instance, WebSocket and SSE tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(
    env: Mapping[str, str], *, log_dir: Path, workers: int = 1, startup_timeout: float = 30.0
) -> Iterator[Server]:
    """Start `python -m keel serve` with the given KEEL_* environment; stop it on exit.

    The database must already be migrated (tests migrate once per run).
    """
    port = free_port()
    full_env = {
        **os.environ,
        "KEEL_ENV": "test",
        "KEEL_LOG_LEVEL": "INFO",
        "KEEL_AUTO_MIGRATE": "false",
        **env,
        "KEEL_PORT": str(port),
        "KEEL_HOST": "127.0.0.1",
        "KEEL_WORKERS": str(workers),
    }
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve"], env=full_env, stdout=log, stderr=log
        )
    server = Server(port=port, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
