"""Real-time benchmark: idle WebSocket capacity and commit-to-delivery latency.

    .venv/bin/python bench/realtime_bench.py [--connections 10000] [--subscribers 1000]
        [--events 100] [--database-url postgresql+asyncpg://…] [--redis-url redis://…]
        [--instances 2]

Starts one Keel instance (`python -m keel serve`, SQLite in a temp dir unless a database
URL is given), then:
1. opens N idle authenticated WebSocket connections and reports the server's memory per
   connection and the file descriptors it needed;
2. with S subscribers connected, creates projects through the API and measures, for every
   delivery, the time from the event's commit timestamp to its arrival (same host clock).
With `--instances 2` (PostgreSQL + Redis) a second instance serves half the subscribers while
every write goes to the first: the second half's latency is commit -> delivery across
instances (sequencer pass, bus hop, read on the other instance), reported on its own line.
Clients are minimal raw WebSocket clients (they answer pings) so that the client side stays
cheap. Raises RLIMIT_NOFILE to the hard limit for itself and the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """Handshake, auth, then read frames (answering pings) and timestamp events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ready = asyncio.Event()
        self.latencies: list[float] | None = None
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, token: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=65536)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        client = cls(reader, writer)
        client.send(0x1, json.dumps({"type": "auth", "accessToken": token}).encode())
        client.task = asyncio.create_task(client.run())
        return client

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        header = bytes([0x80 | opcode])
        header += (
            bytes([0x80 | length]) if length < 126 else bytes([0xFE]) + struct.pack("!H", length)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def run(self) -> None:
        marker = b'"timestamp":"'
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
                payload = await self.reader.readexactly(length)
                opcode = first & 0x0F
                if opcode == 0x9:
                    self.send(0xA, payload)
                elif opcode == 0x8:
                    return
                elif payload == b'{"type":"ready"}':
                    self.ready.set()
                elif self.latencies is not None and marker in payload:
                    arrived = time.time()
                    start = payload.index(marker) + len(marker)
                    stamp = payload[start : payload.index(b'"', start)].decode()
                    sent = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                    self.latencies.append(arrived - sent)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.writer.close()


def start_server(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "KEEL_ENV": "test",
        "KEEL_HOST": "127.0.0.1",
        "KEEL_PORT": str(port),
        "KEEL_DATA_DIR": str(data_dir),
        "KEEL_SECRET_KEY": "bench-secret-" + "x" * 40,
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_RATE_LIMIT_ENABLED": "false",
        "KEEL_ARGON2_MEMORY_KIB": "1024",
        "KEEL_ARGON2_TIME_COST": "1",
        "KEEL_ARGON2_PARALLELISM": "1",
    }
    if args.database_url:
        env["KEEL_DATABASE_URL"] = args.database_url
        subprocess.run([sys.executable, "-m", "keel", "migrate"], env=env, check=True, cwd=ROOT)
    if args.redis_url:
        env["KEEL_REDIS_URL"] = args.redis_url
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve"], env=env, stdout=log, stderr=log, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError((data_dir / "server.log").read_text())


async def register(http: httpx.AsyncClient) -> str:
    email = f"bench-{os.urandom(6).hex()}@example.com"
    response = await http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "correct horse battery staple", "name": "Bench"},
    )
    response.raise_for_status()
    token: str = response.json()["accessToken"]
    return token


async def open_many(port: int, token: str, count: int, batch: int = 250) -> list[Client]:
    clients: list[Client] = []
    for start in range(0, count, batch):
        opened = await asyncio.gather(
            *(Client.open(port, token) for _ in range(min(batch, count - start)))
        )
        await asyncio.gather(*(asyncio.wait_for(c.ready.wait(), 60) for c in opened))
        clients.extend(opened)
    return clients


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data_dir = Path(tempfile.mkdtemp(prefix="keel-rt-bench-"))
    process, port = start_server(args, data_dir)
    others: list[tuple[subprocess.Popen[bytes], int]] = []
    for n in range(1, args.instances):
        other_dir = data_dir / f"instance-{n + 1}"
        other_dir.mkdir()
        others.append(start_server(args, other_dir))
    server = psutil.Process(process.pid)
    shape = "PostgreSQL + Redis" if args.database_url else "SQLite, in-process bus"
    print(f"# realtime bench ({shape}); RLIMIT_NOFILE raised {soft} -> {hard}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            token = await register(http)
            # Warm-up: one connection and one event, so lazily built state is not counted.
            warm = await open_many(port, token, 1)
            await http.post("/api/v1/projects", json={"name": "Warm up"}, headers=_auth(token))
            await asyncio.sleep(0.5)
            base_rss, base_fds = server.memory_info().rss, server.num_fds()

            started = time.perf_counter()
            idle = await open_many(port, token, args.connections)
            took = time.perf_counter() - started
            await asyncio.sleep(2)
            rss, fds = server.memory_info().rss, server.num_fds()
            per_conn = (rss - base_rss) / args.connections
            print(
                f"idle connections: {len(idle)} authenticated in {took:.1f} s; "
                f"server RSS {base_rss / 2**20:.0f} -> {rss / 2**20:.0f} MiB "
                f"= {per_conn / 1024:.1f} KiB per connection; "
                f"server fds {base_fds} -> {fds} (needs RLIMIT_NOFILE > {fds})"
            )
            for client in idle:
                client.close()
            for client in warm:
                client.close()
            await asyncio.sleep(2)

            ports = [port, *(other_port for _, other_port in others)]
            share = args.subscribers // len(ports)
            groups = [
                await open_many(
                    p, token, share if n else args.subscribers - share * (len(ports) - 1)
                )
                for n, p in enumerate(ports)
            ]
            subscribers = [client for group in groups for client in group]
            for client in subscribers:
                client.latencies = []
            for index in range(args.events):
                response = await http.post(
                    "/api/v1/projects", json={"name": f"Bench {index}"}, headers=_auth(token)
                )
                response.raise_for_status()
                await asyncio.sleep(1 / args.rate)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                len(c.latencies or []) < args.events for c in subscribers
            ):
                await asyncio.sleep(0.2)
            samples = [value for c in subscribers for value in (c.latencies or [])]
            expected = args.events * args.subscribers
            print(
                f"delivery to {args.subscribers} subscribers, {args.events} events at "
                f"{args.rate}/s: {len(samples)}/{expected} deliveries; commit->delivery "
                f"p50 {percentile(samples, 0.5) * 1000:.1f} ms, "
                f"p99 {percentile(samples, 0.99) * 1000:.1f} ms, "
                f"max {max(samples) * 1000:.1f} ms, mean {statistics.fmean(samples) * 1000:.1f} ms"
            )
            if len(groups) > 1:
                for n, group in enumerate(groups):
                    values = [value for c in group for value in (c.latencies or [])]
                    where = "the writing instance" if n == 0 else f"instance {n + 1} (across)"
                    print(
                        f"  {len(group)} subscribers on {where}: {len(values)}/"
                        f"{args.events * len(group)} deliveries; p50 "
                        f"{percentile(values, 0.5) * 1000:.1f} ms, "
                        f"p99 {percentile(values, 0.99) * 1000:.1f} ms, "
                        f"max {max(values) * 1000:.1f} ms"
                    )
            for client in subscribers:
                client.close()
    finally:
        for each in [process, *(other for other, _ in others)]:
            each.terminate()
            try:
                each.wait(timeout=30)
            except subprocess.TimeoutExpired:
                each.kill()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--database-url", default=os.environ.get("KEEL_BENCH_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("KEEL_BENCH_REDIS_URL"))
    parser.add_argument(
        "--instances", type=int, default=1, help="2+: needs --database-url and --redis-url"
    )
    parsed = parser.parse_args()
    if parsed.instances > 1 and not (parsed.database_url and parsed.redis_url):
        parser.error("--instances above 1 needs --database-url and --redis-url")
    asyncio.run(main(parsed))
