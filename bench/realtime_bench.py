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
import contextlib
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
import uvloop

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Linux: ask the kernel to stamp each received segment (SO_TIMESTAMPNS, struct timespec);
# Python 3.11's socket module does not name the option.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
EVENT_MARKER = b'"timestamp":"'


class Client:
    """A raw WebSocket subscriber: handshake, auth, then frames read in a reader callback
    (answering pings). For every event it keeps the commit timestamp and two arrival times:
    when the kernel received the bytes into this subscriber's socket (SO_TIMESTAMPNS), and
    when this bench process got round to reading them. One process reads all subscribers
    in turn, so the second includes its own queue: with 1 000 sockets woken by one event,
    the last is read tens of ms after its bytes arrived (docs/performance.md)."""

    def __init__(self, sock: socket.socket, buffer: bytes) -> None:
        self.sock = sock
        self.buffer = buffer
        self.ready = asyncio.Event()
        self.closed = False
        self.recording = False
        # (commit timestamp text, kernel arrival, read by this process), parsed afterwards.
        self.samples: list[tuple[bytes, float, float]] = []

    @classmethod
    async def open(cls, port: int, token: str) -> Client:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise RuntimeError("connection closed during the handshake")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        client = cls(sock, rest)
        loop.add_reader(sock.fileno(), client.readable)
        client.send(0x1, json.dumps({"type": "auth", "accessToken": token}).encode())
        client.parse(time.time(), time.time())
        return client

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        header = bytes([0x80 | opcode])
        header += (
            bytes([0x80 | length]) if length < 126 else bytes([0xFE]) + struct.pack("!H", length)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.send(header + mask + masked)  # small; the socket's buffer takes it whole

    def readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        read_at = time.time()
        if not data:
            self.close()
            return
        arrived = read_at
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = TIMESPEC.unpack(value[: TIMESPEC.size])
                arrived = seconds + nanoseconds / 1e9
        self.buffer += data
        self.parse(arrived, read_at)

    def parse(self, arrived: float, read_at: float) -> None:
        """Take every whole frame out of the buffer (server frames are unmasked)."""
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                (length,), offset = struct.unpack_from("!H", buffer, 2), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
            if len(buffer) < offset + length:
                break
            payload = buffer[offset : offset + length]
            buffer = buffer[offset + length :]
            opcode = first & 0x0F
            if opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.close()
                return
            elif payload == b'{"type":"ready"}':
                self.ready.set()
            elif self.recording and EVENT_MARKER in payload:
                start = payload.index(EVENT_MARKER) + len(EVENT_MARKER)
                stamp = payload[start : payload.index(b'"', start)]
                self.samples.append((stamp, arrived, read_at))
        self.buffer = buffer

    def latencies(self) -> tuple[list[float], list[float]]:
        """Commit -> arrival in the socket, and commit -> read by this process (seconds)."""
        arrivals, reads = [], []
        for stamp, arrived, read_at in self.samples:
            sent = datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
            arrivals.append(arrived - sent)
            reads.append(read_at - sent)
        return arrivals, reads

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()


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
                client.recording = True
            for index in range(args.events):
                response = await http.post(
                    "/api/v1/projects", json={"name": f"Bench {index}"}, headers=_auth(token)
                )
                response.raise_for_status()
                await asyncio.sleep(1 / args.rate)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                len(c.samples) < args.events for c in subscribers
            ):
                await asyncio.sleep(0.2)
            expected = args.events * args.subscribers
            arrivals, reads = _latencies(subscribers)
            print(
                f"delivery to {args.subscribers} subscribers, {args.events} events at "
                f"{args.rate}/s: {len(arrivals)}/{expected} deliveries; commit->delivery "
                f"(arrival in the subscriber's socket) {_summary(arrivals)}"
            )
            print(
                f"  commit->read by this one bench process (its own queue included) "
                f"{_summary(reads)}"
            )
            if len(groups) > 1:
                for n, group in enumerate(groups):
                    values, _ = _latencies(group)
                    where = "the writing instance" if n == 0 else f"instance {n + 1} (across)"
                    print(
                        f"  {len(group)} subscribers on {where}: {len(values)}/"
                        f"{args.events * len(group)} deliveries; {_summary(values)}"
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


def _latencies(clients: list[Client]) -> tuple[list[float], list[float]]:
    arrivals: list[float] = []
    reads: list[float] = []
    for client in clients:
        arrived, read = client.latencies()
        arrivals.extend(arrived)
        reads.extend(read)
    return arrivals, reads


def _summary(values: list[float]) -> str:
    if not values:
        return "no deliveries"
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    return (
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {max(values) * 1000:.1f} ms, mean {statistics.fmean(values) * 1000:.1f} ms"
    )


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
    uvloop.run(main(parsed))  # the client's own loop: cheaper reads of 1 000 sockets
